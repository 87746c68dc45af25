// What the chaos run believes the file system must hold: for every name it used, the generation it
// last wrote and what the CLI said about it. The invariant is checked against this at the end.

/**
 * confirmed: `put` exited 0 (or said the file "is stored" while waiting for more replicas): it
 *   must read back byte-exact. removed: `rm` exited 0: it must be gone. unknown: a `put` or `rm`
 *   that failed, which in a race may still have taken effect: the name may exist or not, but if it
 *   exists it must hold exactly this generation's bytes.
 */
export type FileState = 'confirmed' | 'removed' | 'unknown'

export interface Generation {
  /** Label the bytes are derived from (with the run seed): see content.ts. */
  label: string
  size: number
  sha256: string
  /** The master's file id, when put told us. */
  fileId?: string
  /** The keeper the first replica went to, when put told us. */
  keeper?: string
}

export interface FileEntry {
  name: string
  state: FileState
  /** The last generation written under this name (kept after an rm for the record). */
  current: Generation
  /** How the state came about, for reports: "put ok", "put failed: …", "rm ok", … */
  why: string
  generations: number
}

export class Model {
  readonly files = new Map<string, FileEntry>()

  set(name: string, state: FileState, current: Generation, why: string): void {
    const previous = this.files.get(name)
    this.files.set(name, {name, state, current, why, generations: (previous?.generations ?? 0) + (previous?.current === current ? 0 : 1)})
  }

  byState(state: FileState): FileEntry[] {
    return [...this.files.values()].filter((entry) => entry.state === state)
  }

  count(state: FileState): number {
    let count = 0
    for (const entry of this.files.values()) if (entry.state === state) count++
    return count
  }
}
