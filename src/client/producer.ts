import { partitionForKey } from "../log/murmur2.js";
import type { Admin } from "./admin.js";
import { SluiceApiError, isSluiceApiError } from "./errors.js";
import { seg, type Transport } from "./http.js";
import { randomId } from "./ids.js";
import { toBase64, utf8, utf8Length } from "./records.js";
import type { ProduceAnswer } from "./types.js";

export interface ProducerOptions {
  /** How long a partition's batch waits for more records (Kafka's `linger.ms`, 5). */
  lingerMs?: number;
  /** A batch is sent once it holds this many bytes of JSON (1 MiB). */
  batchBytes?: number;
  /**
   * Retry-safe produce (true): every request carries `Producer-Id`, `Producer-Epoch` and a
   * per-partition `Producer-Seq`, so a retry of a request whose answer was lost is recognised
   * and writes nothing. Without it a produce is never retried once it may have reached the server.
   */
  idempotent?: boolean;
  /** The producer's identity (random). Reuse it with a higher `epoch` to fence an older instance. */
  producerId?: string;
  /** 0. */
  epoch?: number;
}

export interface ProduceInput {
  /** A UTF-8 or binary key; picks the partition by murmur2 as Kafka does. */
  key?: string | Uint8Array | null;
  /** Any JSON value, or bytes (sent as `valueBase64`). */
  value: unknown;
  headers?: Record<string, string>;
  partition?: number;
  timestamp?: number;
}

export interface RecordMetadata {
  partition: number;
  offset: number;
}

export interface Producer {
  /** Resolves once every record is durable, with their places in input order. */
  send(topic: string, records: ProduceInput[]): Promise<RecordMetadata[]>;
  /** Sends everything buffered and waits for the answers. */
  flush(): Promise<void>;
  /** Flushes, then refuses further sends. */
  close(): Promise<void>;
}

/** The server's limit on records per produce request. */
const MAX_RECORDS_PER_REQUEST = 10_000;
/** Sequence numbers are 0 … 2³¹−1 and wrap to 0, as Kafka's do (RFC 0004). */
const MAX_SEQ = 2 ** 31 - 1;
const nextSeq = (seq: number) => (seq === MAX_SEQ ? 0 : seq + 1);
/** Bytes a record adds to a request besides its JSON: `,"partition":N` and a comma. */
const PER_RECORD_OVERHEAD = 20;
/** How long a topic's partition count is trusted. */
const METADATA_TTL_MS = 60_000;

interface Pending {
  /** The record's JSON, without its partition. */
  json: string;
  bytes: number;
  resolve: (value: RecordMetadata) => void;
  reject: (err: unknown) => void;
}

interface Batch {
  records: Pending[];
}

/** One (topic, partition): a buffer, sealed batches in order, one request in flight. */
class PartitionStream {
  buffer: Pending[] = [];
  bytes = 0;
  timer: ReturnType<typeof setTimeout> | undefined;
  ready: Batch[] = [];
  sending = false;
  /** The sequence number the next new request gets. */
  seq = 0;
  /** A request whose outcome is unknown; it is sent again (same seq) before anything new. */
  unresolved: { body: string; seq: number } | undefined;
  idleWaiters: (() => void)[] = [];

  get idle(): boolean {
    return !this.sending && this.ready.length === 0 && this.buffer.length === 0;
  }
}

interface TopicMetadata {
  partitions: number;
  maxMessageBytes: number;
  fetchedAt: number;
}

interface TopicState {
  metadata: Promise<TopicMetadata> | undefined;
  /** Keyless records go to one partition per batch (Kafka's sticky partitioner). */
  sticky: number | undefined;
  streams: Map<number, PartitionStream>;
  /** Sends of this topic are placed in call order, so per-partition order follows it. */
  chain: Promise<void>;
}

interface Encoded {
  json: string;
  bytes: number;
  /** Key, value and header bytes: what counts against `max.message.bytes`, roughly. */
  recordBytes: number;
  keyBytes: Uint8Array | null;
  partition: number | undefined;
}

export class BatchingProducer implements Producer {
  readonly producerId: string;
  readonly epoch: number;
  readonly idempotent: boolean;
  private readonly lingerMs: number;
  private readonly batchBytes: number;
  private readonly topics = new Map<string, TopicState>();
  private closed = false;
  /** A producer_fenced answer: a newer instance took over this producer id. */
  private fatal: SluiceApiError | undefined;

  constructor(
    private readonly http: Transport,
    private readonly admin: Admin,
    options: ProducerOptions = {},
  ) {
    this.lingerMs = Math.max(0, options.lingerMs ?? 5);
    this.batchBytes = Math.max(1, options.batchBytes ?? 1024 * 1024);
    this.idempotent = options.idempotent ?? true;
    this.producerId = options.producerId ?? randomId();
    this.epoch = options.epoch ?? 0;
    if (this.idempotent && !/^[A-Za-z0-9._-]{1,64}$/.test(this.producerId)) {
      throw new TypeError("producerId must be 1-64 of [A-Za-z0-9._-]");
    }
    if (!Number.isInteger(this.epoch) || this.epoch < 0 || this.epoch > MAX_SEQ) {
      throw new TypeError(`epoch must be an integer from 0 to ${MAX_SEQ}`);
    }
  }

  async send(topic: string, records: ProduceInput[]): Promise<RecordMetadata[]> {
    if (this.fatal !== undefined) throw this.fatal;
    if (this.closed) throw new Error("the producer is closed");
    if (records.length === 0) return [];
    const encoded = records.map(encode);
    const state = this.topic(topic);
    const placed = state.chain.then(() => this.place(topic, state, encoded));
    state.chain = placed.then(
      () => undefined,
      () => undefined,
    );
    return Promise.all(await placed);
  }

  async flush(): Promise<void> {
    for (const state of this.topics.values()) await state.chain;
    const waits: Promise<void>[] = [];
    for (const [topic, state] of this.topics) {
      for (const [partition, stream] of state.streams) {
        if (stream.buffer.length > 0) this.seal(topic, state, partition, stream);
        if (!stream.idle) waits.push(new Promise((resolve) => stream.idleWaiters.push(resolve)));
      }
    }
    await Promise.all(waits);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  private topic(name: string): TopicState {
    let state = this.topics.get(name);
    if (!state) {
      state = {
        metadata: undefined,
        sticky: undefined,
        streams: new Map(),
        chain: Promise.resolve(),
      };
      this.topics.set(name, state);
    }
    return state;
  }

  private metadata(topic: string, state: TopicState): Promise<TopicMetadata> {
    const cached = state.metadata;
    if (cached) {
      return cached.then((m) =>
        Date.now() - m.fetchedAt < METADATA_TTL_MS ? m : this.refresh(topic, state),
      );
    }
    return this.refresh(topic, state);
  }

  private refresh(topic: string, state: TopicState): Promise<TopicMetadata> {
    const loading = this.admin.describeTopic(topic, { segments: false }).then((d) => ({
      partitions: d.partitions.length,
      maxMessageBytes: d.config["max.message.bytes"],
      fetchedAt: Date.now(),
    }));
    state.metadata = loading;
    loading.catch(() => {
      if (state.metadata === loading) state.metadata = undefined;
    });
    return loading;
  }

  /** Chooses each record's partition and buffers it; returns its promise per record. */
  private async place(
    topic: string,
    state: TopicState,
    encoded: Encoded[],
  ): Promise<Promise<RecordMetadata>[]> {
    const metadata = await this.metadata(topic, state);
    encoded.forEach((record, index) => {
      if (
        record.partition !== undefined &&
        (!Number.isInteger(record.partition) ||
          record.partition < 0 ||
          record.partition >= metadata.partitions)
      ) {
        throw new SluiceApiError({
          status: 400,
          code: "invalid_partition",
          message: `record ${index}: topic "${topic}" has no partition ${record.partition}`,
          details: { index, partition: record.partition, partitions: metadata.partitions },
          retryable: false,
        });
      }
      if (record.recordBytes > metadata.maxMessageBytes) {
        throw new SluiceApiError({
          status: 413,
          code: "record_too_large",
          message: `record ${index} is about ${record.recordBytes} bytes, over the topic's max.message.bytes (${metadata.maxMessageBytes})`,
          details: {
            index,
            size: record.recordBytes,
            "max.message.bytes": metadata.maxMessageBytes,
          },
          retryable: false,
        });
      }
    });
    return encoded.map((record) => {
      let partition = record.partition;
      if (partition === undefined && record.keyBytes !== null) {
        partition = partitionForKey(record.keyBytes, metadata.partitions);
      }
      if (partition === undefined) {
        state.sticky ??= Math.floor(Math.random() * metadata.partitions);
        partition = state.sticky;
      }
      return this.append(topic, state, partition, record);
    });
  }

  private append(
    topic: string,
    state: TopicState,
    partition: number,
    record: Encoded,
  ): Promise<RecordMetadata> {
    let stream = state.streams.get(partition);
    if (!stream) {
      stream = new PartitionStream();
      state.streams.set(partition, stream);
    }
    const full =
      stream.buffer.length >= MAX_RECORDS_PER_REQUEST ||
      stream.bytes + record.bytes > this.batchBytes;
    if (stream.buffer.length > 0 && full) this.seal(topic, state, partition, stream);
    const promise = new Promise<RecordMetadata>((resolve, reject) => {
      stream.buffer.push({ json: record.json, bytes: record.bytes, resolve, reject });
    });
    stream.bytes += record.bytes;
    if (stream.bytes >= this.batchBytes) {
      this.seal(topic, state, partition, stream);
    } else if (stream.timer === undefined) {
      const target = stream;
      target.timer = setTimeout(() => {
        target.timer = undefined;
        if (target.buffer.length > 0) this.seal(topic, state, partition, target);
      }, this.lingerMs);
    }
    return promise;
  }

  private seal(topic: string, state: TopicState, partition: number, stream: PartitionStream) {
    if (stream.timer !== undefined) {
      clearTimeout(stream.timer);
      stream.timer = undefined;
    }
    stream.ready.push({ records: stream.buffer });
    stream.buffer = [];
    stream.bytes = 0;
    // The sticky partition's batch has left: the next keyless records pick another.
    if (state.sticky === partition) state.sticky = undefined;
    void this.drain(topic, partition, stream);
  }

  private async drain(topic: string, partition: number, stream: PartitionStream): Promise<void> {
    if (stream.sending) return;
    stream.sending = true;
    try {
      for (let batch = stream.ready.shift(); batch; batch = stream.ready.shift()) {
        await this.sendBatch(topic, partition, stream, batch);
      }
    } finally {
      stream.sending = false;
      if (stream.idle) for (const wake of stream.idleWaiters.splice(0)) wake();
    }
  }

  /** Sends one batch and settles its records' promises; never throws. */
  private async sendBatch(
    topic: string,
    partition: number,
    stream: PartitionStream,
    batch: Batch,
  ): Promise<void> {
    const fail = (err: unknown) => batch.records.forEach((r) => r.reject(err));
    if (this.fatal !== undefined) return fail(this.fatal);
    const body = `{"records":[${batch.records
      .map((r) => `${r.json.slice(0, -1)},"partition":${partition}}`)
      .join(",")}]}`;

    if (!this.idempotent) {
      try {
        const answer = await this.post(topic, body, undefined);
        settle(batch, partition, answer);
      } catch (err) {
        this.forget(topic, err);
        fail(err);
      }
      return;
    }

    if (stream.unresolved) {
      // Its outcome decides the sequence: sent again, it is either written now or recognised.
      const { body: earlier, seq } = stream.unresolved;
      try {
        await this.post(topic, earlier, seq);
        stream.unresolved = undefined;
        stream.seq = nextSeq(seq);
      } catch (err) {
        if (!this.settleFailure(stream, err, undefined)) return fail(err);
        stream.unresolved = undefined;
        if (this.fatal !== undefined) return fail(this.fatal);
      }
    }

    const seq = stream.seq;
    try {
      const answer = await this.post(topic, body, seq);
      stream.seq = nextSeq(seq);
      settle(batch, partition, answer);
    } catch (err) {
      this.forget(topic, err);
      this.settleFailure(stream, err, { body, seq });
      fail(err);
    }
  }

  /**
   * After a failed idempotent request: a 4xx means the server wrote nothing and the sequence
   * number is still free (true); otherwise the outcome is unknown and the request must be sent
   * again before the next one (false).
   */
  private settleFailure(
    stream: PartitionStream,
    err: unknown,
    request: { body: string; seq: number } | undefined,
  ): boolean {
    if (isSluiceApiError(err, "producer_fenced")) this.fatal ??= err;
    const definite = err instanceof SluiceApiError && err.status >= 400 && err.status < 500;
    if (!definite && request) stream.unresolved = request;
    return definite;
  }

  /** A topic gone or re-created: its partition count is asked for again. */
  private forget(topic: string, err: unknown): void {
    if (isSluiceApiError(err, "topic_not_found") || isSluiceApiError(err, "invalid_partition")) {
      const state = this.topics.get(topic);
      if (state) state.metadata = undefined;
    }
  }

  private async post(topic: string, body: string, seq: number | undefined): Promise<ProduceAnswer> {
    const headers: Record<string, string> | undefined =
      seq === undefined
        ? undefined
        : {
            "Producer-Id": this.producerId,
            "Producer-Epoch": String(this.epoch),
            "Producer-Seq": String(seq),
          };
    const answer = await this.http.request<ProduceAnswer>({
      method: "POST",
      path: `/v1/topics/${seg(topic)}/records`,
      bodyText: body,
      ...(headers ? { headers } : {}),
      idempotent: seq !== undefined,
    });
    return answer.body;
  }
}

function settle(batch: Batch, partition: number, answer: ProduceAnswer): void {
  const offsets = answer?.offsets;
  if (!Array.isArray(offsets) || offsets.length !== batch.records.length) {
    const err = new SluiceApiError({
      status: 200,
      code: "invalid_response",
      message: `the server answered ${Array.isArray(offsets) ? offsets.length : "no"} offsets for ${batch.records.length} records`,
      retryable: false,
    });
    batch.records.forEach((r) => r.reject(err));
    return;
  }
  batch.records.forEach((r, i) => r.resolve({ partition, offset: offsets[i]!.offset }));
}

/** The record's JSON (without a partition) and its sizes; throws for what JSON cannot carry. */
function encode(input: ProduceInput, index: number): Encoded {
  if (typeof input !== "object" || input === null) {
    throw new TypeError(`record ${index} must be an object with a value`);
  }
  const wire: Record<string, unknown> = {};
  let keyBytes: Uint8Array | null = null;
  if (input.key instanceof Uint8Array) {
    keyBytes = input.key;
    wire.keyBase64 = toBase64(input.key);
  } else if (typeof input.key === "string") {
    keyBytes = utf8.encode(input.key);
    wire.key = input.key;
  } else if (input.key !== undefined && input.key !== null) {
    throw new TypeError(`record ${index}: a key is a string or a Uint8Array`);
  }
  let valueBytes: number;
  if (input.value instanceof Uint8Array) {
    wire.valueBase64 = toBase64(input.value);
    valueBytes = input.value.length;
  } else {
    const text = JSON.stringify(input.value) as string | undefined;
    if (text === undefined) {
      throw new TypeError(`record ${index}: the value must be a JSON value or a Uint8Array`);
    }
    wire.value = input.value;
    valueBytes = utf8Length(text);
  }
  let headerBytes = 0;
  if (input.headers !== undefined) {
    for (const [name, value] of Object.entries(input.headers)) {
      if (typeof value !== "string") {
        throw new TypeError(`record ${index}: header "${name}" must be a string`);
      }
      headerBytes += utf8Length(name) + utf8Length(value);
    }
    wire.headers = input.headers;
  }
  if (input.timestamp !== undefined) wire.timestamp = input.timestamp;
  const json = JSON.stringify(wire);
  return {
    json,
    bytes: utf8Length(json) + PER_RECORD_OVERHEAD,
    recordBytes: (keyBytes?.length ?? 0) + valueBytes + headerBytes,
    keyBytes,
    partition: input.partition,
  };
}
