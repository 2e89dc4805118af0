/** Where the keys of each tag are recorded: `until` is the time (epoch ms) after which a member is dead. Internal. */
export interface TagIndex {
  addTag(tag: string, key: string, until: number): Promise<void>;
  takeTag(tag: string): Promise<string[]>;
}

const MIN_PRUNE_AT = 1024;

/**
 * This instance's tag memberships, outside the response LRU (an evicted entry never takes its tag list with it).
 * Members past their time are pruned whenever the number of tags or of one tag's members doubled since the last
 * pruning: the index stays proportional to the entries alive, at O(1) amortized per add. Internal.
 */
export class MemoryTagIndex {
  private readonly tags = new Map<string, Map<string, number>>();
  private pruneTagsAt = MIN_PRUNE_AT;
  private readonly pruneMembersAt = new Map<string, number>();

  add(tag: string, key: string, until: number): void {
    let members = this.tags.get(tag);
    if (members === undefined) {
      if (this.tags.size >= this.pruneTagsAt) this.pruneAll();
      members = new Map();
      this.tags.set(tag, members);
    }
    const previous = members.get(key);
    if (previous === undefined || previous < until) members.set(key, until);
    if (members.size >= (this.pruneMembersAt.get(tag) ?? MIN_PRUNE_AT)) {
      prune(members, Date.now());
      this.pruneMembersAt.set(tag, Math.max(MIN_PRUNE_AT, members.size * 2));
    }
  }

  take(tag: string): string[] {
    const members = this.tags.get(tag);
    if (members === undefined) return [];
    this.tags.delete(tag);
    this.pruneMembersAt.delete(tag);
    return [...members.keys()];
  }

  /** @internal Members recorded under `tag` (tests). */
  size(tag?: string): number {
    return tag === undefined ? this.tags.size : (this.tags.get(tag)?.size ?? 0);
  }

  clear(): void {
    this.tags.clear();
    this.pruneMembersAt.clear();
  }

  private pruneAll(): void {
    const now = Date.now();
    for (const [tag, members] of this.tags) {
      prune(members, now);
      if (members.size === 0) {
        this.tags.delete(tag);
        this.pruneMembersAt.delete(tag);
      }
    }
    this.pruneTagsAt = Math.max(MIN_PRUNE_AT, this.tags.size * 2);
  }
}

function prune(members: Map<string, number>, now: number): void {
  for (const [key, until] of members) if (until <= now) members.delete(key);
}

interface KeyValueStore {
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown, ttl?: number): Promise<unknown>;
  delete(key: string): Promise<unknown>;
}

/**
 * Tag memberships in an L2 store that has no native sets: one `{ key: until }` object per tag, rewritten under this
 * instance's lock and pruned of dead members on each write. Two instances adding to one tag at the same instant can
 * still lose a member (use `@keyv/redis` for native sets). Internal.
 */
export class StoreTagIndex implements TagIndex {
  constructor(
    private readonly store: KeyValueStore,
    private readonly prefix: string,
    private readonly isolated: <T>(key: string, fn: () => Promise<T>) => Promise<T>,
  ) {}

  addTag(tag: string, key: string, until: number): Promise<void> {
    const tagKey = this.prefix + tag;
    return this.isolated(tagKey, async () => {
      const stored = await this.store.get(tagKey);
      const members: Record<string, number> =
        typeof stored === 'object' && stored !== null && !Array.isArray(stored)
          ? (stored as Record<string, number>)
          : {};
      const now = Date.now();
      let last = until;
      for (const member of Object.keys(members)) {
        if (members[member] <= now) delete members[member];
        else if (members[member] > last) last = members[member];
      }
      if ((members[key] ?? 0) < until) members[key] = until;
      await this.store.set(tagKey, members, Math.max(1, last - now));
    });
  }

  takeTag(tag: string): Promise<string[]> {
    const tagKey = this.prefix + tag;
    return this.isolated(tagKey, async () => {
      const stored = await this.store.get(tagKey);
      await this.store.delete(tagKey);
      if (Array.isArray(stored)) return stored.map(String);
      return typeof stored === 'object' && stored !== null ? Object.keys(stored) : [];
    });
  }
}
