/**
 * API keys (docs/rfcs/0005-auth-and-limits.md §3): the third part of the metadata table, beside
 * topics and groups. A key's secret is never stored, only its SHA-256 digest; the plain key is
 * shown once, when it is created.
 *
 * Adapters implement it beside MetaStore and GroupStore, on the same table.
 */
export interface ApiKeyRecord {
  /** A ULID: public, safe to log, the lookup key. */
  id: string;
  /** SHA-256 of the secret part of the key (32 bytes). */
  secretHash: Uint8Array;
  /** Scope strings (src/auth/scopes.ts), stored as given after validation. */
  scopes: string[];
  description: string;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  rateLimit: { perSecond: number; burst: number } | null;
}

export type ApiKeyInfo = Omit<ApiKeyRecord, "secretHash">;

export interface KeyStore {
  /** Stores a new key; a key with the same id is a `conflict` and changes nothing. */
  putKey(record: ApiKeyRecord): Promise<void>;
  /** The key, read strongly consistently, or undefined. */
  getKey(id: string): Promise<ApiKeyRecord | undefined>;
  /** Every key, revoked and expired ones included, by id (oldest first: ids are ULIDs). */
  listKeys(): Promise<ApiKeyInfo[]>;
  /** Marks the key revoked at `at`; false when there is no such key. Revoking twice keeps the first time. */
  revokeKey(id: string, at: number): Promise<boolean>;
}

const keyStoreMethods = ["putKey", "getKey", "listKeys", "revokeKey"] as const;

/**
 * The metadata store as a KeyStore: every adapter implements both, on the same table. Checked
 * on use, not here, so that wrappers of a MetaStore alone still serve everything but keys.
 */
export function keyStoreOf(meta: object): KeyStore {
  const resolve = (): KeyStore => {
    const candidate = meta as Partial<KeyStore>;
    if (!keyStoreMethods.every((m) => typeof candidate[m] === "function")) {
      throw new Error("the metadata store does not implement KeyStore");
    }
    return candidate as KeyStore;
  };
  return {
    putKey: (record) => resolve().putKey(record),
    getKey: (id) => resolve().getKey(id),
    listKeys: () => resolve().listKeys(),
    revokeKey: (id, at) => resolve().revokeKey(id, at),
  };
}
