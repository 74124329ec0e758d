import { isSluiceApiError } from "./errors.js";
import { attemptsOf, seg, type Transport } from "./http.js";
import type {
  ApiKeyInfo,
  CreateKeyRequest,
  CreatedApiKey,
  GroupDescription,
  ListOffsetsAnswer,
  MaintenanceReport,
  MintTokenRequest,
  MintedToken,
  ResetBody,
  ResetOut,
  TopicDescription,
  TopicInfo,
} from "./types.js";

/** Topics, offsets, groups, maintenance, keys and tokens: the README's HTTP API v1, one call per route. */
export interface Admin {
  createTopic(
    name: string,
    partitions: number,
    config?: Record<string, number>,
  ): Promise<TopicInfo>;
  listTopics(): Promise<{ name: string; partitions: number }[]>;
  /** With `segments: false` the partitions carry no segment list (one index query fewer each). */
  describeTopic(name: string, options?: { segments?: boolean }): Promise<TopicDescription>;
  deleteTopic(name: string): Promise<void>;
  /** Kafka's ListOffsets: the first offset at or after a time (`null` if none), or the ends. */
  listOffsets(
    topic: string,
    partition: number,
    spec: "earliest" | "latest" | number,
  ): Promise<{ offset: number | null; logStartOffset: number; logEndOffset: number }>;
  listGroups(): Promise<{ group: string; createdAt: number }[]>;
  describeGroup(group: string): Promise<GroupDescription>;
  /** Only for a group without members (else 409 `group_not_empty`). */
  resetOffsets(group: string, body: ResetBody): Promise<ResetOut>;
  deleteGroup(group: string): Promise<void>;
  runMaintenance(topic?: string): Promise<MaintenanceReport>;
  /**
   * Creates an API key (needs `admin`). The answer's `key` is the only time the key is shown.
   * Never retried after an unknown outcome, which could leave a second, unknown key behind.
   */
  createKey(request: CreateKeyRequest): Promise<CreatedApiKey>;
  /** Every key, revoked and expired ones included, without secrets (needs `admin`). */
  listKeys(): Promise<ApiKeyInfo[]>;
  /** Revokes a key by id (needs `admin`); revoking twice keeps the first time. */
  revokeKey(id: string): Promise<void>;
  /**
   * Signs a token for the given scopes (needs `admin`, or a key holding every scope asked for;
   * the server needs SLUICE_JWT_SECRET).
   */
  mintToken(request: MintTokenRequest): Promise<MintedToken>;
}

export class HttpAdmin implements Admin {
  constructor(private readonly http: Transport) {}

  async createTopic(
    name: string,
    partitions: number,
    config?: Record<string, number>,
  ): Promise<TopicInfo> {
    const body = { name, partitions, ...(config === undefined ? {} : { config }) };
    try {
      const answer = await this.http.request<TopicInfo>({
        method: "POST",
        path: "/v1/topics",
        body,
      });
      return answer.body;
    } catch (err) {
      // A retry after a lost answer finds the topic: ours, if it is the topic asked for.
      if (!(isSluiceApiError(err, "topic_exists") && attemptsOf(err) > 1)) throw err;
      const topic = await this.describeTopic(name, { segments: false });
      const same =
        topic.partitions.length === partitions &&
        Object.entries(config ?? {}).every(
          ([key, value]) => (topic.config as Record<string, number>)[key] === value,
        );
      if (!same) throw err;
      return { name: topic.name, partitions: topic.partitions.length, config: topic.config };
    }
  }

  async listTopics(): Promise<{ name: string; partitions: number }[]> {
    const answer = await this.http.request<{ topics: { name: string; partitions: number }[] }>({
      method: "GET",
      path: "/v1/topics",
    });
    return answer.body.topics;
  }

  async describeTopic(name: string, options?: { segments?: boolean }): Promise<TopicDescription> {
    const answer = await this.http.request<TopicDescription>({
      method: "GET",
      path: `/v1/topics/${seg(name)}`,
      query: { segments: options?.segments },
    });
    return answer.body;
  }

  async deleteTopic(name: string): Promise<void> {
    try {
      await this.http.request({ method: "DELETE", path: `/v1/topics/${seg(name)}` });
    } catch (err) {
      // A retry after a lost answer finds the topic gone: the delete happened.
      if (!(isSluiceApiError(err, "topic_not_found") && attemptsOf(err) > 1)) throw err;
    }
  }

  async listOffsets(
    topic: string,
    partition: number,
    spec: "earliest" | "latest" | number,
  ): Promise<{ offset: number | null; logStartOffset: number; logEndOffset: number }> {
    const { body } = await this.http.request<ListOffsetsAnswer>({
      method: "GET",
      path: `/v1/topics/${seg(topic)}/partitions/${seg(partition)}/offsets`,
      query: { timestamp: spec },
    });
    return {
      offset: body.offset,
      logStartOffset: body.logStartOffset,
      logEndOffset: body.logEndOffset,
    };
  }

  async listGroups(): Promise<{ group: string; createdAt: number }[]> {
    const answer = await this.http.request<{ groups: { group: string; createdAt: number }[] }>({
      method: "GET",
      path: "/v1/groups",
    });
    return answer.body.groups;
  }

  async describeGroup(group: string): Promise<GroupDescription> {
    const answer = await this.http.request<GroupDescription>({
      method: "GET",
      path: `/v1/groups/${seg(group)}`,
    });
    return answer.body;
  }

  async resetOffsets(group: string, body: ResetBody): Promise<ResetOut> {
    const answer = await this.http.request<ResetOut>({
      method: "POST",
      path: `/v1/groups/${seg(group)}/offsets/reset`,
      body,
    });
    return answer.body;
  }

  async deleteGroup(group: string): Promise<void> {
    try {
      await this.http.request({ method: "DELETE", path: `/v1/groups/${seg(group)}` });
    } catch (err) {
      if (!(isSluiceApiError(err, "group_not_found") && attemptsOf(err) > 1)) throw err;
    }
  }

  async runMaintenance(topic?: string): Promise<MaintenanceReport> {
    const answer = await this.http.request<MaintenanceReport>({
      method: "POST",
      path: "/v1/admin/maintenance",
      query: { topic },
    });
    return answer.body;
  }

  async createKey(request: CreateKeyRequest): Promise<CreatedApiKey> {
    const answer = await this.http.request<CreatedApiKey>({
      method: "POST",
      path: "/v1/auth/keys",
      body: request,
      idempotent: false,
    });
    return answer.body;
  }

  async listKeys(): Promise<ApiKeyInfo[]> {
    const answer = await this.http.request<{ keys: ApiKeyInfo[] }>({
      method: "GET",
      path: "/v1/auth/keys",
    });
    return answer.body.keys;
  }

  async revokeKey(id: string): Promise<void> {
    await this.http.request({ method: "DELETE", path: `/v1/auth/keys/${seg(id)}` });
  }

  async mintToken(request: MintTokenRequest): Promise<MintedToken> {
    const answer = await this.http.request<MintedToken>({
      method: "POST",
      path: "/v1/auth/tokens",
      body: request,
    });
    return answer.body;
  }
}
