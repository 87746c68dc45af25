// Pure placement decisions: which keeper takes an upload, which copies repair which files, which
// surplus copies go. Plain functions over data, so they are tested without a network.

export interface KeeperLoad {
  id: string
  alive: boolean
  /** Transfers under way on the keeper, as it last reported plus what the master sent it since. */
  load: number
  storedBytes: number
  freeBytes: number
  /** Its failure domain (a rack, a room, a site): a file's replicas go into as many zones as there are. */
  zone: string
  /** Being drained (or drained): it takes no new replicas, and its own do not count toward a file's target, though they still serve as sources. */
  draining: boolean
}

export interface FileReplicas {
  fileId: string
  name: string
  size: number
  /** Keepers recorded as holding a replica, alive or not (the table's own set: a plan is synchronous and copies nothing). */
  holders: Iterable<string>
  /** Keepers that must not get a copy now (they still have to delete an old one). */
  excluded?: Iterable<string>
  /**
   * Holders a copy of this file failed from since its last good copy (one the destination cannot
   * reach, say): the source only when no other holder is alive, so that a partition between two
   * keepers does not make every retry pick the same unreachable source.
   */
  failedSources?: Iterable<string>
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

/** Whether new replicas may go to this keeper. */
function takesReplicas(keeper: KeeperLoad): boolean {
  return keeper.alive && !keeper.draining
}

/** The least-loaded alive keeper with room for `size` bytes, not draining, not among `exclude`. */
export function pickUploadTarget(keepers: KeeperLoad[], size: number, exclude: ReadonlySet<string> = new Set()): KeeperLoad | undefined {
  return keepers.filter((keeper) => takesReplicas(keeper) && !exclude.has(keeper.id) && keeper.freeBytes >= size).sort(byLoad)[0]
}

/**
 * The keepers after `first` in a one-pass upload's write pipeline: as many as make the placement
 * goal with it, each chosen as the replicator would choose a copy's destination (takes replicas,
 * has room, a zone the chain lacks first, then the least loaded), none of `exclude`.
 */
export function pickPipeline(keepers: KeeperLoad[], size: number, first: KeeperLoad, wanted: number, exclude: ReadonlySet<string> = new Set()): KeeperLoad[] {
  const goal = placementGoal(keepers, wanted)
  const chain: KeeperLoad[] = []
  const zones = new Set([first.zone])
  const taken = new Set([first.id, ...exclude])
  while (chain.length + 1 < goal.replicas) {
    const next = keepers
      .filter((keeper) => takesReplicas(keeper) && !taken.has(keeper.id) && keeper.freeBytes >= size)
      .sort((a, b) => Number(zones.has(a.zone)) - Number(zones.has(b.zone)) || byLoad(a, b))[0]
    if (!next) break
    chain.push(next)
    taken.add(next.id)
    zones.add(next.zone)
  }

  return chain
}

/** What every file should have: `replicas` counted replicas, spread over `zones` distinct zones. */
export interface PlacementGoal {
  replicas: number
  zones: number
}

/**
 * The goal for every file: the wanted replicas capped at the keepers that can take one, and as
 * many distinct zones as those keepers sit in, up to that count (like HDFS rack awareness).
 */
export function placementGoal(keepers: KeeperLoad[], wanted: number): PlacementGoal {
  const usable = keepers.filter(takesReplicas)
  const replicas = Math.min(wanted, usable.length)
  return {replicas, zones: Math.min(replicas, new Set(usable.map((keeper) => keeper.zone)).size)}
}

/** Where a file stands: its replicas on alive keepers, which of them count (not draining), and the zones those cover. */
export interface FileStanding {
  /** Holders that are alive: each can be copied from. */
  sources: string[]
  /** Alive holders that are not draining: these count toward the target. */
  counted: string[]
  zones: Set<string>
}

export function standingOf(holders: Iterable<string>, keepers: ReadonlyMap<string, KeeperLoad>): FileStanding {
  const sources: string[] = []
  const counted: string[] = []
  const zones = new Set<string>()
  for (const id of holders) {
    const keeper = keepers.get(id)
    if (!keeper?.alive) continue
    sources.push(id)
    if (keeper.draining) continue
    counted.push(id)
    zones.add(keeper.zone)
  }

  return {sources, counted, zones}
}

/** How many holders count toward the target (alive, not draining). Allocates nothing: passes run it over the whole table. */
export function countedOf(holders: Iterable<string>, keepers: ReadonlyMap<string, KeeperLoad>): number {
  let counted = 0
  for (const id of holders) {
    const keeper = keepers.get(id)
    if (keeper?.alive && !keeper.draining) counted++
  }

  return counted
}

/** A file's standing in numbers: what passes over the whole table (census, replicator) can afford per file. */
export interface Tally {
  /** Alive holders. */
  sources: number
  /** Alive holders that are not draining. */
  counted: number
  /** Distinct zones of the counted holders. */
  zones: number
}

/** The zones of one tallyOf or holdersSettled call: reused, so that the call allocates no list of its own. */
const seenZones: string[] = []

/** standingOf in numbers, with no list or set built. */
export function tallyOf(holders: Iterable<string>, keepers: ReadonlyMap<string, KeeperLoad>): Tally {
  let sources = 0
  let counted = 0
  seenZones.length = 0
  for (const id of holders) {
    if (!keepers.get(id)?.alive) continue
    sources++
    if (counts(id, keepers)) counted++
  }

  return {sources, counted, zones: seenZones.length}
}

/**
 * isSettled of a file's holders, from counts alone (no list or set built), which is what a pass
 * over 100,000 files can afford for each. Copies landing count as planRepairs counts them: only those
 * into a keeper alive and not draining.
 */
export function holdersSettled(holders: Iterable<string>, landing: ReadonlySet<string>, keepers: ReadonlyMap<string, KeeperLoad>, goal: PlacementGoal): boolean {
  let {sources, counted} = tallyOf(holders, keepers)
  if (sources === 0) return true
  // seenZones holds the holders' zones still; the landing copies' are added to them.
  for (const id of landing) if (counts(id, keepers)) counted++
  return counted === goal.replicas && seenZones.length >= goal.zones
}

/** Whether a replica on this keeper counts toward the target (alive, not draining); notes its zone in seenZones. */
function counts(id: string, keepers: ReadonlyMap<string, KeeperLoad>): boolean {
  const keeper = keepers.get(id)
  if (!keeper?.alive || keeper.draining) return false
  if (!seenZones.includes(keeper.zone)) seenZones.push(keeper.zone)
  return true
}

/**
 * Whether a file needs no copy and no trim: its counted replicas plus the copies landing on it
 * make the goal, in enough zones. A file with no alive replica is settled too: nothing can be done.
 */
export function isSettled(standing: FileStanding, landing: ReadonlySet<string>, keepers: ReadonlyMap<string, KeeperLoad>, goal: PlacementGoal): boolean {
  if (standing.sources.length === 0) return true
  const zones = new Set(standing.zones)
  for (const id of landing) zones.add(keepers.get(id)?.zone ?? '')
  return standing.counted.length + landing.size === goal.replicas && zones.size >= goal.zones
}

export interface RepairPlanInput {
  files: FileReplicas[]
  keepers: KeeperLoad[]
  /** Wanted replicas per file; capped at the number of keepers that can take one. */
  target: number
  /** Copies already under way: file id → destinations. */
  inFlight: ReadonlyMap<string, ReadonlySet<string>>
  /** At most this many copies into one keeper at once. */
  maxPerDestination: number
  /**
   * And at most this many bytes of copies into one keeper at once, though never fewer than one
   * copy: small files go many at a time, large ones few. No limit when absent.
   */
  maxBytesPerDestination?: number
  /** Bytes of the copies under way into each keeper, by keeper id. */
  inFlightBytes?: ReadonlyMap<string, number>
}

/**
 * Plans the copies that bring every file back to its target, most endangered files first (one
 * counted replica before two; among equals in the order given, which is the table's: oldest
 * first), each into a zone the file does not cover yet when there is one. A
 * file at its count but in too few zones gets one more copy into a zone it lacks; planTrims then
 * takes the surplus from its most crowded zone. Sources and destinations are spread by load; each
 * planned copy counts as load, so one plan does not pile every copy onto the same keeper.
 */
export function planRepairs(input: RepairPlanInput): CopyTask[] {
  const goal = placementGoal(input.keepers, input.target)
  // Draining keepers are sources still: their copies move to the others.
  const load = new Map(input.keepers.filter((keeper) => keeper.alive).map((keeper) => [keeper.id, {...keeper}]))
  const incoming = new Map<string, number>()
  for (const destinations of input.inFlight.values()) {
    for (const id of destinations) incoming.set(id, (incoming.get(id) ?? 0) + 1)
  }

  const incomingBytes = new Map(input.inFlightBytes ?? [])
  const maxBytes = input.maxBytesPerDestination ?? Number.POSITIVE_INFINITY
  const takesMore = (id: string, size: number) => {
    const bytes = incomingBytes.get(id) ?? 0
    return (incoming.get(id) ?? 0) < input.maxPerDestination && (bytes === 0 || bytes + size <= maxBytes)
  }

  // A copy into a keeper declared dead (or draining) since it began will not count: it no longer
  // counts toward the target.
  const landingOf = (fileId: string) => new Set([...(input.inFlight.get(fileId) ?? [])].filter((id) => load.get(id)?.draining === false))
  const tasks: CopyTask[] = []
  const planFile = (file: FileReplicas): void => {
    const standing = standingOf(file.holders, load)
    const landing = landingOf(file.fileId)
    if (isSettled(standing, landing, load, goal)) return
    const underWay = input.inFlight.get(file.fileId) ?? new Set<string>()
    const taken = new Set([...file.holders, ...underWay, ...(file.excluded ?? [])])
    const zones = new Set([...standing.zones, ...[...landing].map((id) => load.get(id)!.zone)])
    let missing = goal.replicas - standing.counted.length - landing.size
    const failed = new Set(file.failedSources ?? [])
    while (missing > 0 || zones.size < goal.zones) {
      const destination = [...load.values()]
        .filter((keeper) => takesReplicas(keeper) && !taken.has(keeper.id) && keeper.freeBytes >= file.size && takesMore(keeper.id, file.size))
        // At its count, a copy is only worth making into a zone the file lacks.
        .filter((keeper) => missing > 0 || !zones.has(keeper.zone))
        .sort((a, b) => Number(zones.has(a.zone)) - Number(zones.has(b.zone)) || byLoad(a, b))[0]
      if (!destination) break
      const source = standing.sources
        .map((id) => load.get(id)!)
        .sort((a, b) => Number(failed.has(a.id)) - Number(failed.has(b.id)) || byLoad(a, b))[0]!
      tasks.push({fileId: file.fileId, name: file.name, size: file.size, source: source.id, destination: destination.id, aliveReplicas: standing.counted.length})
      taken.add(destination.id)
      zones.add(destination.zone)
      source.load++
      destination.load++
      destination.freeBytes -= file.size
      incoming.set(destination.id, (incoming.get(destination.id) ?? 0) + 1)
      incomingBytes.set(destination.id, (incomingBytes.get(destination.id) ?? 0) + file.size)
      missing--
    }
  }

  // A pass runs after copies land, and its files can be the whole table (a keeper of 25,000 files
  // died). With every destination at its limit nothing is looked at; otherwise the files are
  // walked by counted replicas, fewest first (a count each, nothing built, no sort), and the walk
  // stops once every destination is at its limit. Building each file's standing and sorting
  // 100,000 names by localeCompare took seconds per pass, and a pass ran per landed copy.
  const slotFree = () => [...load.values()].some((keeper) => takesReplicas(keeper) && takesMore(keeper.id, 1))
  if (!slotFree()) return tasks
  const {files} = input
  const counted = files.map((file) => countedOf(file.holders, load))
  const most = counted.reduce((max, count) => Math.max(max, count), 0)
  for (let level = 0; level <= most; level++) {
    for (let index = 0; index < files.length; index++) {
      if (counted[index] !== level) continue
      if (!slotFree()) return tasks
      planFile(files[index]!)
    }
  }

  return tasks
}

/**
 * Surplus replicas to delete where a file has more counted replicas than its target (a keeper came
 * back after its files were copied elsewhere, or a copy restored the zone spread). Each goes from
 * the zone holding the most of the file's replicas, so the spread never shrinks; within a zone the
 * most loaded holder gives its up. Files with copies under way are left alone until those settle.
 */
export function planTrims(files: FileReplicas[], keepers: KeeperLoad[], target: number, inFlight: ReadonlyMap<string, ReadonlySet<string>>): TrimTask[] {
  const alive = new Map(keepers.filter((keeper) => keeper.alive).map((keeper) => [keeper.id, keeper]))
  const tasks: TrimTask[] = []
  for (const file of files) {
    if (inFlight.has(file.fileId) || countedOf(file.holders, alive) <= target) continue
    const holders = standingOf(file.holders, alive).counted.map((id) => alive.get(id)!)
    for (let surplus = holders.length - target; surplus > 0; surplus--) {
      const perZone = new Map<string, number>()
      for (const keeper of holders) perZone.set(keeper.zone, (perZone.get(keeper.zone) ?? 0) + 1)
      const victim = holders.sort((a, b) => perZone.get(b.zone)! - perZone.get(a.zone)! || byLoad(b, a))[0]!
      holders.splice(holders.indexOf(victim), 1)
      tasks.push({fileId: file.fileId, name: file.name, keeper: victim.id})
    }
  }

  return tasks
}
