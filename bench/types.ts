/** What every benchmark reports, so the report writer and the ratios treat them alike. */

/** A figure measured over repeated runs: the median, with the spread of the runs. */
export interface Figure {
  median: number;
  min: number;
  max: number;
  runs: number;
}

/** Acknowledgement latency percentiles over all requests of a measurement, in milliseconds. */
export interface Latency {
  p50: number;
  p99: number;
  p999: number;
}

/** One produce-style measurement: a system writing records of one size in batches. */
export interface WriteResult {
  system: string;
  recordBytes: number;
  batch: number;
  concurrency: number;
  recordsPerSec: Figure;
  mbPerSec: Figure;
  latencyMs: Latency;
  /** Requests (or batches) acknowledged per second. */
  requestsPerSec?: Figure;
  /** Acknowledged requests the latency percentiles were taken over. */
  samples?: number;
  /** Requests that failed (non-2xx, timeouts); a cell with failures is suspect. */
  errors?: number;
}

/** A produce cell of Sluice itself, with what its flushes looked like (from `/v1/metrics`). */
export interface SluiceWriteResult extends WriteResult {
  backend: BackendName;
  /** Objects written (flushes) per second, over the whole cell. */
  flushesPerSec: number;
  /** Mean bytes per flushed object (encoded records). */
  meanFlushBytes: number;
  /** Produce requests per flush: how much the linger batches concurrent requests. */
  requestsPerFlush: number;
}

export type BackendName = "embedded" | "s3+dynamodb";

/** A read-back measurement: one consumer paging through a partition. */
export interface ReadResult {
  system: string;
  backend: BackendName;
  /** `chunks` (the active segment as flushed) or `sealed` (after a roll). */
  source: "chunks" | "sealed";
  recordBytes: number;
  /** The fetch's `maxBytes`. */
  fetchBytes: number;
  totalBytes: number;
  recordsPerSec: Figure;
  mbPerSec: Figure;
  /** Fetch requests' latency over all repeats. */
  latencyMs: Latency;
}

/** Produce → visible in a waiting long-poll fetch of another connection. */
export interface EndToEndResult {
  backend: BackendName;
  samples: number;
  /** Milliseconds between sending the produce request and the consumer holding the record. */
  latencyMs: Latency;
}

/** Requests that reached the stores, over some number of bytes. */
export interface StoreCounts {
  puts: number;
  gets: number;
  lists: number;
  deletes: number;
  bytesPut: number;
  bytesGot: number;
  /** Metadata-store calls (SQLite or DynamoDB), by whether they read or change the table. */
  kvReads: number;
  kvWrites: number;
  /** DynamoDB capacity units as the table reported them (`ReturnConsumedCapacity`); 0 for SQLite. */
  readUnits: number;
  writeUnits: number;
}

/** StoreCounts scaled to one GiB of record payload. */
export type PerGiB = StoreCounts;

export interface CostStep {
  /** What was done: ingest, maintenance (rolls), read of chunks, read of sealed segments. */
  step: string;
  payloadBytes: number;
  counts: StoreCounts;
  perGiB: PerGiB;
  /** Dollars per GiB at the configured prices (S3 + DynamoDB + Lambda where it applies). */
  dollarsPerGiB?: DollarBreakdown;
}

export interface DollarBreakdown {
  s3Requests: number;
  dynamodb: number;
  lambdaRequests: number;
  lambdaCompute: number;
  total: number;
}

export interface CostResult {
  backend: BackendName;
  /** The produce shape the counts were taken under. */
  shape: string;
  /** Wall time of the ingest (server shape), for a feel of the load. */
  ingestSeconds?: number;
  steps: CostStep[];
}

/** Raw throughput of an object store at one object size: the ceiling a flush loop can reach. */
export interface StoreLimit {
  store: string;
  op: "put" | "get";
  objectBytes: number;
  concurrency: number;
  opsPerSec: Figure;
  mbPerSec: Figure;
  latencyMs: Latency;
}

export interface Ratio {
  /** What is compared, e.g. `sluice embedded 1KiB×100 c16 / hono`. */
  label: string;
  sluice: number;
  other: number;
  ratio: number;
  unit: string;
}

export interface LambdaShape {
  bundleBytes: number;
  bundleGzipBytes: number;
  sourceMapBytes: number;
  /** Module import until its top-level await resolved, inside the child. */
  initMs: Figure;
  /** Process start (node's time origin) until the same point: includes node's own boot. */
  processToReadyMs: Figure;
  esbuildOptions: Record<string, unknown>;
  note: string;
}

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  node: string;
  platform: string;
  date: string;
}

export interface PeerInfo {
  name: string;
  version: string;
  durability: string;
}

export interface BenchResults {
  machine: Machine;
  options: Record<string, unknown>;
  durationS: number;
  prices: unknown;
  produce: SluiceWriteResult[];
  fetch: ReadResult[];
  endToEnd: EndToEndResult[];
  cost: CostResult[];
  limits: { stores: StoreLimit[]; hono: WriteResult[] };
  peers: { info: PeerInfo[]; results: WriteResult[] };
  ratios: { limits: Ratio[]; peers: Ratio[] };
  lambda: LambdaShape | null;
  profile?: unknown;
  notes: string[];
}
