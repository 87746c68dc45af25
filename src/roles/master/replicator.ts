import type {ClusterKey} from '../../lib/cluster-key.js'
import {DEFAULTS} from '../../lib/config.js'
import {mintGrant} from '../../lib/grants.js'
import type {Peer} from '../../lib/peer-client.js'
import {catalogueError, DfsError} from '../../lib/errors.js'
import {keeperRoutes, MAX_BATCH_COPIES, type DeleteCommand, type ReplicateRequest} from '../../lib/protocol.js'
import type {KeeperRegistry} from './keeper-registry.js'
import type {MasterMetrics} from './metrics.js'
import {holdersSettled, placementGoal, planRepairs, planTrims, standingOf, type CopyTask, type FileReplicas, type KeeperLoad, type TrimTask} from './placement.js'
import type {FileHolders, FileRow, MasterTable} from './table.js'

export interface ReplicatorOptions {
  /** A keeper, to give orders to. */
  keeperAt: (keeper: {id: string; url: string}) => Peer
  /** With it, each copy order carries a `replicate-from` grant for its source keeper. */
  clusterKey?: ClusterKey
  replicas: number
  intervalMs: number
  heartbeatTimeoutMs: number
  log: {info(message: string): void; warn(message: string): void}
  /** Where copies ordered and failed, and trims, are counted. */
  metrics: Pick<MasterMetrics, 'copiesOrdered' | 'copiesFailed' | 'trims'>
}

// Copies under way into one keeper at once, by count and by bytes (though never fewer than one):
// a backlog of small files goes many at a time, in batched orders, while large files go a few at a
// time. The keeper itself pulls only a few at once; the rest wait their turn there, not a pass here.
const MAX_COPIES_PER_DESTINATION = 256
const MAX_BYTES_PER_DESTINATION = 64 * 1024 * 1024
// How long a keeper that just failed a copy is left out of new ones.
const COOL_DOWN_MS = 1000
// A copy may take as long as moving the file at this rate, and never less than a minute.
const SLOWEST_COPY_BYTES_PER_MS = 5 * 1024
// A triggered pass waits this long, so that a burst of commits and reports makes one pass.
const TRIGGER_DELAY_MS = 10
const NONE: ReadonlySet<string> = new Set()
// How long a copy sealed by an upload's write pipeline counts as under way without its report: its
// keeper holds the bytes already, and the seal is a rename, a directory fsync and one request.
const PIPELINE_SEAL_MS = DEFAULTS.stallTimeoutMs

/**
 * Keeps every file at its replica target. It runs on a timer (the protocol's replication loop)
 * and at once whenever something changes the picture: a file committed, a keeper dead, a keeper
 * back. Copies are pulled by the destination from a source, many at a time.
 *
 * Passes plan over the table's in-memory index of holders, never a scan of the tables. A pass on
 * the timer, at start and when a keeper registers, dies or comes back looks at every file; any
 * other pass only at the files that changed since (the table reports each change) and at those
 * an earlier pass could not settle (no destination free yet, a keeper cooling down, a surplus
 * copy not yet trimmable).
 */
export class Replicator {
  readonly #inFlight = new Map<string, Set<string>>()
  /** Destination keeper id → bytes of the copies under way into it. */
  readonly #inFlightBytes = new Map<string, number>()
  /** Copies riding an upload's write pipeline (also in #inFlight), by `fileId/keeperId`: the timer that gives up on each. */
  readonly #pipelined = new Map<string, NodeJS.Timeout>()
  readonly #running = new Set<Promise<void>>()
  readonly #failedAt = new Map<string, number>()
  /** File id → the sources a copy of it failed from since its last good copy. */
  readonly #failedSources = new Map<string, Set<string>>()
  /** Files to look at in the next pass. */
  readonly #dirty = new Set<string>()
  /** Whether the next pass looks at every file. */
  #full = false
  #timer: NodeJS.Timeout | undefined
  #scheduled = false
  #stopped = false

  constructor(
    private readonly table: MasterTable,
    private readonly keepers: KeeperRegistry,
    private readonly options: ReplicatorOptions,
  ) {
    table.onFileChanged = (fileId) => this.#dirty.add(fileId)
  }

  start(): void {
    this.#timer = setInterval(() => this.trigger({full: true}), this.options.intervalMs)
    this.trigger({full: true})
  }

  async stop(): Promise<void> {
    this.#stopped = true
    clearInterval(this.#timer)
    for (const timer of this.#pipelined.values()) clearTimeout(timer)
    await Promise.allSettled([...this.#running])
  }

  /**
   * Asks for a pass soon; many triggers in a row make one pass. `full`: over every file (the set
   * of keepers changed), not only those that changed since the last pass.
   */
  trigger(options: {full?: boolean} = {}): void {
    if (options.full) this.#full = true
    if (this.#scheduled || this.#stopped) return
    this.#scheduled = true
    setTimeout(() => {
      this.#scheduled = false
      if (!this.#stopped) this.#pass()
    }, TRIGGER_DELAY_MS)
  }

  #pass(): void {
    const keepers = this.keepers.loads()
    // A keeper a copy just failed with is left out of new copies for a moment: it is often one
    // that died and is not declared dead yet, and retrying it at once only fails again.
    const now = Date.now()
    const usable = keepers.map((keeper) => ((this.#failedAt.get(keeper.id) ?? 0) > now - COOL_DOWN_MS ? {...keeper, alive: false} : keeper))
    const byId = new Map(keepers.map((keeper) => [keeper.id, keeper]))
    const goal = placementGoal(keepers, this.options.replicas)
    // A full pass keeps only the files with something to do, as the keepers stand and as the plan
    // sees them (without the keepers cooling down): over 100,000 settled files it builds nothing.
    const cooling = usable.some((keeper, index) => keeper !== keepers[index])
    const usableById = cooling ? new Map(usable.map((keeper) => [keeper.id, keeper])) : byId
    const usableGoal = cooling ? placementGoal(usable, this.options.replicas) : goal
    const files = this.#fileReplicas((holders, landing) => !holdersSettled(holders, landing, byId, goal) || (cooling && !holdersSettled(holders, landing, usableById, usableGoal)))
    // Deaths the master declared without hearing from any keeper since may be its own link's:
    // no copies until a heartbeat settles them (that heartbeat asks for a full pass).
    const copies = !this.keepers.deathsUnconfirmed() ? planRepairs({
          files,
          keepers: usable,
          target: this.options.replicas,
          inFlight: this.#inFlight,
          inFlightBytes: this.#inFlightBytes,
          maxPerDestination: MAX_COPIES_PER_DESTINATION,
          maxBytesPerDestination: MAX_BYTES_PER_DESTINATION,
        })
      : []
    // One order per destination for the copies this pass planned into it.
    const byDestination = new Map<string, CopyTask[]>()
    for (const task of copies) byDestination.set(task.destination, [...(byDestination.get(task.destination) ?? []), task])
    for (const [destination, tasks] of byDestination) {
      for (let first = 0; first < tasks.length; first += MAX_BATCH_COPIES) this.#track(this.#copy(destination, tasks.slice(first, first + MAX_BATCH_COPIES)))
    }
    // Surplus copies go only from keepers heard from just now, never from one that may be dying.
    const heard = keepers.filter((keeper) => this.keepers.heardWithin(keeper.id, this.options.heartbeatTimeoutMs / 2))
    for (const task of planTrims(files, heard, this.options.replicas, this.#inFlight)) this.#track(this.#trim(task))
    // Files left short, in surplus or in too few zones (nothing to copy to yet, a keeper cooling
    // down, a trim that must wait) are looked at again in the next pass; the copies started report
    // back themselves.
    for (const {fileId} of files) {
      const file = this.table.holdersOf(fileId)
      if (file && !holdersSettled(file.holders, this.#inFlight.get(fileId) ?? NONE, byId, goal)) this.#dirty.add(fileId)
    }

    for (const keeper of keepers) if (keeper.draining) this.#finishDrain(keeper.id, byId)
  }

  /**
   * A draining keeper whose every file has its full count on other keepers is drained: its copies
   * leave the table and it is told to delete them (as a trim is: now, and with its heartbeats until
   * it has). Until then nothing of it is deleted, so no file ever has fewer copies than before the
   * drain. A drained keeper that is handed a file anyway (an upload granted before the drain that
   * commits late) gives it up the same way.
   */
  #finishDrain(keeperId: string, keepers: ReadonlyMap<string, KeeperLoad>): void {
    const held = this.table.replicasOn(keeperId)
    const files = held.map((replica) => this.table.holdersOf(replica.fileId)).filter((file) => file !== undefined)
    // Elsewhere, every file must have as many copies as it has with this keeper's, up to the
    // target, and never fewer than one: a drain never lowers a file's count. With too few keepers
    // left to take them the drain waits (as an HDFS decommission does) rather than finishing early.
    const spared = (file: {holders: Iterable<string>}) => {
      const {sources, counted} = standingOf(file.holders, keepers)
      return counted.length >= Math.max(1, Math.min(this.options.replicas, sources.length))
    }
    if (!files.every(spared)) return
    this.table.transaction(() => {
      for (const file of files) {
        this.table.removeReplica(file.fileId, keeperId)
        this.table.addPendingDelete(keeperId, {fileId: file.fileId, name: file.name})
      }
    })
    if (this.keepers.get(keeperId)?.drain !== 'drained') this.options.log.info(`keeper ${keeperId} is drained: every file it held has its replicas elsewhere`)
    this.keepers.setDrain(keeperId, 'drained')
    for (const file of files) this.#track(this.deleteReplica(keeperId, {fileId: file.fileId, name: file.name}))
  }

  /**
   * The files this pass looks at: of every one, those `unsettled` picks (given their holders and the
   * copies landing on them); or those that changed since the last pass. Those are few, or all
   * unsettled (a backlog of copies is looked at again after each pass), so that check would only
   * add to a pass that builds their records anyway.
   */
  #fileReplicas(unsettled: (holders: ReadonlySet<string>, landing: ReadonlySet<string>) => boolean): FileReplicas[] {
    const full = this.#full
    const dirty = [...this.#dirty]
    this.#full = false
    this.#dirty.clear()
    const files: FileReplicas[] = []
    // The table's own sets, not copies: the plan is made before anything changes them.
    const add = (file: FileHolders) => {
      files.push({fileId: file.fileId, name: file.name, size: file.size, holders: file.holders, excluded: this.table.doomedHolders(file.fileId), failedSources: this.#failedSources.get(file.fileId)})
    }

    if (full) {
      for (const file of this.table.allHolders()) if (unsettled(file.holders, this.#inFlight.get(file.fileId) ?? NONE)) add(file)
    } else {
      for (const fileId of dirty) {
        const file = this.table.holdersOf(fileId)
        if (file) add(file)
      }
    }

    return files
  }

  /** Copies ordered and not answered yet. */
  get copiesInFlight(): number {
    let count = 0
    for (const destinations of this.#inFlight.values()) count += destinations.size
    return count
  }

  /** Whether a copy of the file to this keeper was ordered and has not answered yet. */
  isCopyUnderWay(fileId: string, keeperId: string): boolean {
    return this.#inFlight.get(fileId)?.has(keeperId) === true
  }

  /**
   * Copies of a just committed file that its upload's write pipeline is sealing on these keepers:
   * under way, as an ordered copy is, until each keeper reports it (pipelinedLanded) or
   * PIPELINE_SEAL_MS passes, after which the replicator may copy the file there itself.
   */
  expectPipelined(fileId: string, keeperIds: string[]): void {
    const destinations = this.#inFlight.get(fileId) ?? new Set<string>()
    for (const keeperId of keeperIds) {
      if (destinations.has(keeperId)) continue
      destinations.add(keeperId)
      const timer = setTimeout(() => {
        this.options.log.warn(`the pipelined copy of ${fileId} on ${keeperId} did not report within ${PIPELINE_SEAL_MS / 1000} s; the replicator copies it if needed`)
        this.pipelinedLanded(fileId, keeperId)
      }, PIPELINE_SEAL_MS)
      timer.unref()
      this.#pipelined.set(`${fileId}/${keeperId}`, timer)
    }

    this.#inFlight.set(fileId, destinations)
  }

  /** A pipelined copy reported (or was given up): no longer under way. Nothing for any other copy. */
  pipelinedLanded(fileId: string, keeperId: string): void {
    const key = `${fileId}/${keeperId}`
    const timer = this.#pipelined.get(key)
    if (!timer) return
    clearTimeout(timer)
    this.#pipelined.delete(key)
    const destinations = this.#inFlight.get(fileId)
    destinations?.delete(keeperId)
    if (destinations?.size === 0) this.#inFlight.delete(fileId)
    this.#dirty.add(fileId)
    this.trigger()
  }

  #track(work: Promise<void>): void {
    this.#running.add(work)
    void work.finally(() => this.#running.delete(work))
  }

  /**
   * Orders one destination to pull a batch of copies, and records each copy it answers stored
   * (the destination reported them itself; recording them again here is harmless and closes the
   * gap if that report was lost). A copy that failed fails alone: its source cools down and the
   * file is looked at again; the whole order failing cools the destination down too.
   */
  async #copy(destinationId: string, tasks: CopyTask[]): Promise<void> {
    const destination = this.keepers.get(destinationId)
    const copies: Array<{task: CopyTask; file: FileRow; source: {id: string; url: string}}> = []
    for (const task of tasks) {
      const file = this.table.fileById(task.fileId)
      const source = this.keepers.get(task.source)
      if (!file) this.#failedSources.delete(task.fileId)
      if (file && source) copies.push({task, file, source})
    }

    if (!destination || copies.length === 0) return
    let bytes = 0
    for (const {file, source} of copies) {
      this.#inFlight.set(file.fileId, (this.#inFlight.get(file.fileId) ?? new Set<string>()).add(destinationId))
      this.keepers.assigned(source.id)
      this.keepers.assigned(destinationId)
      bytes += file.size
    }

    this.#inFlightBytes.set(destinationId, (this.#inFlightBytes.get(destinationId) ?? 0) + bytes)
    let failures: Array<DfsError | undefined>
    let orderFailed = false
    try {
      const key = this.options.clusterKey
      const orders = await Promise.all(
        copies.map(async ({file, source}): Promise<ReplicateRequest> => {
          // The copy's description carries the generation's creation time, as the first replica's does.
          const order: ReplicateRequest = {fileId: file.fileId, name: file.name, size: file.size, sha256: file.sha256, createdAt: file.createdAt, source: source.url}
          if (key) order.grant = await mintGrant(key, {op: 'replicate-from', fileId: file.fileId, name: file.name, size: file.size, sha256: file.sha256, keeperId: source.id})
          return order
        }),
      )
      this.options.metrics.copiesOrdered.inc(copies.length)
      const answer = await this.options.keeperAt(destination).call(keeperRoutes.replicateBatch, {body: {copies: orders}}, {timeout: Math.max(60_000, bytes / SLOWEST_COPY_BYTES_PER_MS)})
      failures = copies.map(({file}, index) => {
        const result = answer.copies[index]
        if (result?.fileId === file.fileId && result.stored) return undefined
        return catalogueError(result) ?? new DfsError('DFS_ERR_BAD_RESPONSE', `keeper ${destinationId} answered no word on the copy of "${file.name}"`)
      })
    } catch (error) {
      orderFailed = true
      const failure = error instanceof DfsError ? error : new DfsError('DFS_ERR_INTERNAL', (error as Error).message, {cause: error})
      failures = copies.map(() => failure)
    }

    const copied: string[] = []
    // An order that failed whole (its destination died, say) is one line, not one per copy.
    if (orderFailed && copies.length > 1) {
      const [first] = copies
      this.options.log.warn(`copies of ${copies.length} files to ${destinationId} failed ("${first!.file.name}" from ${first!.source.id} first): ${failures[0]!.message}`)
    }

    for (const [index, {task, file, source}] of copies.entries()) {
      const failure = failures[index]
      const destinations = this.#inFlight.get(file.fileId)
      if (!failure && this.table.fileById(file.fileId)) {
        this.table.addReplica({fileId: file.fileId, keeperId: destinationId})
        const alive = this.keepers.countAlive(this.table.holdersOf(file.fileId)?.holders ?? [])
        if (alive >= this.options.replicas) this.table.clearCorrupt(file.fileId)
      }

      destinations?.delete(destinationId)
      if (destinations?.size === 0) this.#inFlight.delete(file.fileId)
      if (!failure) {
        this.#failedSources.delete(file.fileId)
        copied.push(`"${file.name}" from ${source.id}`)
        continue
      }

      if (!orderFailed || copies.length === 1) this.options.log.warn(`copy of "${file.name}" from ${source.id} to ${destinationId} failed: ${failure.message}`)
      this.options.metrics.copiesFailed.inc()
      this.#failedAt.set(task.source, Date.now())
      // A destination that failed the whole order, or lacks the room, is left out for a moment too.
      if (orderFailed || failure.code === 'DFS_ERR_INSUFFICIENT_STORAGE') this.#failedAt.set(destinationId, Date.now())
      this.#failedSources.set(file.fileId, (this.#failedSources.get(file.fileId) ?? new Set()).add(task.source))
      this.#dirty.add(file.fileId)
    }

    const left = (this.#inFlightBytes.get(destinationId) ?? 0) - bytes
    if (left > 0) this.#inFlightBytes.set(destinationId, left)
    else this.#inFlightBytes.delete(destinationId)
    // One line per order, not per copy: a backlog of 100,000 small files would log as many lines.
    if (copied.length === 1) this.options.log.info(`copied ${copied[0]} to ${destinationId}`)
    else if (copied.length > 1) this.options.log.info(`copied ${copied.length} files to ${destinationId}, ${copied[0]} first`)
    if (copied.length < copies.length) setTimeout(() => this.trigger(), COOL_DOWN_MS).unref()
    this.trigger()
  }

  async #trim(task: TrimTask): Promise<void> {
    this.table.transaction(() => {
      this.table.removeReplica(task.fileId, task.keeper)
      this.table.addPendingDelete(task.keeper, {fileId: task.fileId, name: task.name})
    })
    this.options.log.info(`trimming surplus replica of "${task.name}" on ${task.keeper}`)
    this.options.metrics.trims.inc()
    await this.deleteReplica(task.keeper, {fileId: task.fileId, name: task.name})
  }

  /**
   * Tells a keeper to delete a replica now. The order is also queued in the table and delivered
   * with the keeper's next heartbeat, so a keeper that does not answer now still deletes it later.
   */
  async deleteReplica(keeperId: string, command: DeleteCommand): Promise<void> {
    const keeper = this.keepers.get(keeperId)
    if (!keeper) return
    try {
      // Not before the table durably forgot the replica: a crash must not leave it counted but gone.
      await this.table.durable()
      await this.options.keeperAt(keeper).call(keeperRoutes.remove, {params: {name: command.name}, query: {fileId: command.fileId}})
      this.table.clearPendingDelete(keeperId, command.fileId)
    } catch (error) {
      if ((error as {code?: string}).code === 'DFS_ERR_NOT_FOUND') this.table.clearPendingDelete(keeperId, command.fileId)
    }
  }
}
