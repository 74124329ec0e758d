import type { SluiceLog } from "../log/log.js";
import { logger as defaultLogger, type Logger } from "../logger.js";
import type { GroupStore } from "../meta/group-store.js";
import type { MetaStore } from "../meta/meta-store.js";
import { deleteGroup, describeGroup, listGroups, type GroupDescription } from "./admin.js";
import { commitOffsets, type CommitRequest, type CommittedPartition } from "./commit.js";
import { fetchForMember, type GroupFetchRequest, type GroupFetchResult } from "./fetch.js";
import { heartbeat, join, leave, type HeartbeatRequest, type JoinRequest } from "./members.js";
import { resetOffsets, type ResetPartition, type ResetRequest } from "./reset.js";
import { groupConfigDefaults, type GroupConfig } from "../config.js";
import type { GroupContext } from "./state.js";
import type { MemberView } from "./views.js";

export interface GroupServiceDeps {
  log: SluiceLog;
  /** The metadata table: topics' heads and the groups' state and offsets. */
  meta: MetaStore & GroupStore;
  /** The clock leases are stamped and judged by; tests drive it. */
  now?: () => number;
  config?: Partial<GroupConfig>;
  logger?: Logger;
}

/**
 * Consumer groups over stateless requests (docs/rfcs/0002-consumer-groups.md): no process
 * holds group state, so any instance can serve any member. It knows the ports and the log,
 * never an adapter or HTTP.
 */
export class GroupService {
  private readonly ctx: GroupContext;

  constructor(deps: GroupServiceDeps) {
    this.ctx = {
      log: deps.log,
      meta: deps.meta,
      now: deps.now ?? Date.now,
      config: { ...groupConfigDefaults, ...deps.config },
      logger: deps.logger ?? defaultLogger,
    };
  }

  join(group: string, request: JoinRequest): Promise<{ created: boolean; view: MemberView }> {
    return join(this.ctx, group, request);
  }

  async heartbeat(group: string, memberId: string, request: HeartbeatRequest): Promise<MemberView> {
    return (await heartbeat(this.ctx, group, memberId, request)).view;
  }

  leave(group: string, memberId: string): Promise<void> {
    return leave(this.ctx, group, memberId);
  }

  fetch(group: string, memberId: string, request: GroupFetchRequest): Promise<GroupFetchResult> {
    return fetchForMember(this.ctx, group, memberId, request);
  }

  commit(group: string, request: CommitRequest): Promise<CommittedPartition[]> {
    return commitOffsets(this.ctx, group, request);
  }

  reset(
    group: string,
    request: ResetRequest,
  ): Promise<{ dryRun: boolean; offsets: ResetPartition[] }> {
    return resetOffsets(this.ctx, group, request);
  }

  describe(group: string): Promise<GroupDescription> {
    return describeGroup(this.ctx, group);
  }

  list(): Promise<{ group: string; createdAt: number }[]> {
    return listGroups(this.ctx);
  }

  delete(group: string): Promise<void> {
    return deleteGroup(this.ctx, group);
  }
}

const groupStoreMethods = [
  "getGroup",
  "listGroups",
  "putGroup",
  "deleteGroup",
  "getOffsets",
  "writeOffsets",
  "purgeOffsets",
] as const satisfies readonly (keyof GroupStore)[];

/**
 * Every adapter keeps groups in the same table as topics, so the log's MetaStore is the
 * GroupStore too; one that is not is a wiring mistake, refused at start-up.
 */
export function groupStoreOf(meta: MetaStore): MetaStore & GroupStore {
  const candidate = meta as MetaStore & Partial<GroupStore>;
  if (!groupStoreMethods.every((m) => typeof candidate[m] === "function")) {
    throw new Error("the metadata store does not implement GroupStore");
  }
  return candidate as MetaStore & GroupStore;
}
