/**
 * What `npm run bench` measures and the prices it turns request counts into. Everything a
 * reader of the report needs to weigh the figures is here: the matrix, the run lengths and the
 * published prices with their date and region.
 */

/**
 * Published AWS on-demand prices, us-east-1, as listed in November 2024. Request prices are per
 * request (the published figure divided out), storage per GB-month (10^9 bytes).
 */
export const prices = {
  region: "us-east-1",
  asOf: "2024-11",
  source: "aws.amazon.com/{s3,dynamodb,lambda}/pricing (on-demand, Standard tier, x86/arm alike)",
  s3: {
    /** $0.005 per 1,000 PUT, COPY, POST, LIST requests. */
    putPerRequest: 0.005 / 1000,
    /** $0.0004 per 1,000 GET, SELECT and all other requests. */
    getPerRequest: 0.0004 / 1000,
    /** DELETE is free. */
    deletePerRequest: 0,
    /** First 50 TB / month. */
    storagePerGbMonth: 0.023,
  },
  dynamodb: {
    /** On-demand: $0.625 per million write request units. */
    perWriteUnit: 0.625 / 1e6,
    /** On-demand: $0.125 per million read request units. */
    perReadUnit: 0.125 / 1e6,
  },
  lambda: {
    /** $0.0000166667 per GB-second (x86; arm64 is $0.0000133334). */
    perGbSecond: 0.0000166667,
    /** $0.20 per million requests. */
    perRequest: 0.2 / 1e6,
  },
} as const;

/**
 * The HTTP function's shape in infra/sluice-stack.ts, and what a produce or fetch invocation is
 * assumed to bill: Lambda bills wall time, and on AWS that is dominated by one S3 PUT (~20-30 ms
 * p50 for small objects) and one DynamoDB transaction (~5-10 ms). The stand-ins here say nothing
 * about AWS latencies, so the duration is an assumption, stated in the report.
 */
export const lambdaShape = {
  memoryMb: 1024,
  assumedProduceMs: 40,
  assumedFetchMs: 30,
} as const;

export interface Matrix {
  recordBytes: number[];
  batches: number[];
  concurrency: number[];
}

export interface RunPlan {
  matrix: Matrix;
  /** One measurement's length; a cell runs `repeats` of them after a warm-up. */
  durationMs: number;
  warmupMs: number;
  repeats: number;
  /** Each peer run's length (the peers run the same cells, with the same repeats). */
  peerDurationMs: number;
  /** The peers run the same cells; the `everysec` Redis variant only these record sizes. */
  everysecRecordBytes: number[];
  /** Record payload read back in the fetch phase. */
  fetchMiB: number;
  /** Payload ingested for the cost counters. */
  costMiB: number;
  /** Produce → long-poll visibility samples. */
  endToEndSamples: number;
  lambdaColdStarts: number;
  /** Hono's trivial handler runs the Sluice cells with these record sizes. */
  honoRecordBytes: number[];
  /** How long the profiled cell runs under `--profile`. */
  profileMs: number;
}

export const fullPlan: RunPlan = {
  matrix: { recordBytes: [100, 1024, 10240], batches: [1, 100, 1000], concurrency: [1, 16, 64] },
  durationMs: 2000,
  warmupMs: 300,
  repeats: 3,
  peerDurationMs: 1500,
  everysecRecordBytes: [1024],
  fetchMiB: 32,
  costMiB: 64,
  endToEndSamples: 300,
  lambdaColdStarts: 5,
  honoRecordBytes: [1024],
  profileMs: 10_000,
};

/** `--quick`: a smoke run of every phase, a couple of minutes. */
export const quickPlan: RunPlan = {
  matrix: { recordBytes: [1024], batches: [1, 100], concurrency: [1, 16] },
  durationMs: 1000,
  warmupMs: 200,
  repeats: 2,
  peerDurationMs: 1000,
  everysecRecordBytes: [1024],
  fetchMiB: 8,
  costMiB: 8,
  endToEndSamples: 50,
  lambdaColdStarts: 3,
  honoRecordBytes: [1024],
  profileMs: 5_000,
};

/**
 * The cell quoted in the headline, the cost counters and the profile: 1 KiB records, 100 per
 * request, 16 producers.
 */
export const headlineCell = { recordBytes: 1024, batch: 100, concurrency: 16 } as const;

/** Server settings for the Sluice child: bodies of 1,000 × 10 KiB records must fit. */
export const sluiceServerEnv: Record<string, string> = {
  SLUICE_MAX_REQUEST_BYTES: String(32 * 1024 * 1024),
  // Maintenance would roll and delete behind the measurements' back.
  SLUICE_MAINTENANCE_INTERVAL_MS: "0",
  LOG_LEVEL: "info",
  // 64 producers × 10 MB bodies, parsed and encoded, pass the default 4 GiB heap.
  NODE_OPTIONS: "--max-old-space-size=8192",
};

/**
 * Hard bound on any single request of a measurement: a round of 64 requests of 1,000 × 10 KiB
 * records is 640 MB, which the S3 stand-in takes a minute or more to absorb.
 */
export const requestTimeoutMs = 240_000;
/** After a cell's time is up, in-flight requests get this long before they count as failed. */
export const drainTimeoutMs = 240_000;
