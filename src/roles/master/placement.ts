// Pure placement decisions: which keeper takes an upload, which copies repair which files, which
// surplus copies go. Plain functions over data, so they are tested without a network.

export interface KeeperLoad {
  id: string
  alive: boolean
  /** Transfers under way on the keeper, as it last reported plus what the master sent it since. */
  load: number
  storedBytes: number
  freeBytes: number
}

export interface FileReplicas {
  fileId: string
  name: string
  size: number
  /** Keepers recorded as holding a replica, alive or not. */
  holders: string[]
  /** Keepers that must not get a copy now (they still have to delete an old one). */
  excluded?: string[]
  /**
   * Holders a copy of this file failed from since its last good copy (one the destination cannot
   * reach, say): the source only when no other holder is alive, so that a partition between two
   * keepers does not make every retry pick the same unreachable source.
   */
  failedSources?: string[]
}

export interface CopyTask {
  fileId: string
  name: string
  size: number
  source: string
  destination: string
  /** Alive replicas when the task was planned; fewer means more urgent. */
  aliveReplicas: number
}

export interface TrimTask {
  fileId: string
  name: string
  keeper: string
}

/** Least-loaded first; fewer stored bytes, then more free space, then id break ties. */
export function byLoad(a: KeeperLoad, b: KeeperLoad): number {
  return a.load - b.load || a.storedBytes - b.storedBytes || b.freeBytes - a.freeBytes || a.id.localeCompare(b.id)
}

/** The least-loaded alive keeper with room for `size` bytes, not among `exclude`. */
export function pickUploadTarget(keepers: KeeperLoad[], size: number, exclude: ReadonlySet<string> = new Set()): KeeperLoad | undefined {
  return keepers.filter((keeper) => keeper.alive && !exclude.has(keeper.id) && keeper.freeBytes >= size).sort(byLoad)[0]
}

export interface RepairPlanInput {
  files: FileReplicas[]
  keepers: KeeperLoad[]
  /** Wanted replicas per file; capped at the number of alive keepers. */
  target: number
  /** Copies already under way: file id → destinations. */
  inFlight: ReadonlyMap<string, ReadonlySet<string>>
  /** At most this many copies into one keeper at once. */
  maxPerDestination: number
}

/**
 * Plans the copies that bring every file back to its target, most endangered files first (one
 * alive replica before two). Sources and destinations are spread by load; each planned copy
 * counts as load, so one plan does not pile every copy onto the same keeper.
 */
export function planRepairs(input: RepairPlanInput): CopyTask[] {
  const alive = input.keepers.filter((keeper) => keeper.alive)
  const target = Math.min(input.target, alive.length)
  const load = new Map(alive.map((keeper) => [keeper.id, {...keeper}]))
  const incoming = new Map<string, number>()
  for (const destinations of input.inFlight.values()) {
    for (const id of destinations) incoming.set(id, (incoming.get(id) ?? 0) + 1)
  }

  // A copy into a keeper declared dead since it began will not land in time (its order may hang
  // until it times out): it no longer counts toward the target.
  const landing = (fileId: string) => [...(input.inFlight.get(fileId) ?? [])].filter((id) => load.has(id)).length
  const endangered = input.files
    .map((file) => ({file, aliveHolders: file.holders.filter((id) => load.has(id))}))
    .filter(({file, aliveHolders}) => aliveHolders.length > 0 && aliveHolders.length + landing(file.fileId) < target)
    .sort((a, b) => a.aliveHolders.length - b.aliveHolders.length || a.file.name.localeCompare(b.file.name))

  const tasks: CopyTask[] = []
  for (const {file, aliveHolders} of endangered) {
    const underWay = input.inFlight.get(file.fileId) ?? new Set<string>()
    const taken = new Set([...file.holders, ...underWay, ...(file.excluded ?? [])])
    let missing = target - aliveHolders.length - landing(file.fileId)
    while (missing > 0) {
      const destination = [...load.values()]
        .filter((keeper) => !taken.has(keeper.id) && keeper.freeBytes >= file.size && (incoming.get(keeper.id) ?? 0) < input.maxPerDestination)
        .sort(byLoad)[0]
      if (!destination) break
      const failed = new Set(file.failedSources ?? [])
      const source = aliveHolders
        .map((id) => load.get(id)!)
        .sort((a, b) => Number(failed.has(a.id)) - Number(failed.has(b.id)) || byLoad(a, b))[0]!
      tasks.push({fileId: file.fileId, name: file.name, size: file.size, source: source.id, destination: destination.id, aliveReplicas: aliveHolders.length})
      taken.add(destination.id)
      source.load++
      destination.load++
      destination.freeBytes -= file.size
      incoming.set(destination.id, (incoming.get(destination.id) ?? 0) + 1)
      missing--
    }
  }

  return tasks
}

/**
 * Surplus replicas to delete where a file has more alive replicas than its target (a keeper came
 * back after its files were copied elsewhere). The most loaded holders give theirs up. Files with
 * copies under way are left alone until those settle.
 */
export function planTrims(files: FileReplicas[], keepers: KeeperLoad[], target: number, inFlight: ReadonlyMap<string, ReadonlySet<string>>): TrimTask[] {
  const alive = new Map(keepers.filter((keeper) => keeper.alive).map((keeper) => [keeper.id, keeper]))
  const tasks: TrimTask[] = []
  for (const file of files) {
    if (inFlight.has(file.fileId)) continue
    const holders = file.holders.filter((id) => alive.has(id)).map((id) => alive.get(id)!)
    const surplus = holders.length - target
    if (surplus <= 0) continue
    for (const keeper of holders.sort(byLoad).reverse().slice(0, surplus)) {
      tasks.push({fileId: file.fileId, name: file.name, keeper: keeper.id})
    }
  }

  return tasks
}
