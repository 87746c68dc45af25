import {callJson} from '../../lib/http-client.js'
import type {DeleteCommand, ReplicateRequest} from '../../lib/protocol.js'
import type {KeeperRegistry} from './keeper-registry.js'
import {planRepairs, planTrims, type CopyTask, type FileReplicas, type TrimTask} from './placement.js'
import type {MasterTable} from './table.js'

export interface ReplicatorOptions {
  replicas: number
  intervalMs: number
  heartbeatTimeoutMs: number
  log: {info(message: string): void; warn(message: string): void}
}

// Copies into one keeper at once; more only queue on its disk.
const MAX_COPIES_PER_DESTINATION = 4
// How long a keeper that just failed a copy is left out of new ones.
const COOL_DOWN_MS = 1000
// A copy may take as long as moving the file at this rate, and never less than a minute.
const SLOWEST_COPY_BYTES_PER_MS = 5 * 1024

/**
 * Keeps every file at its replica target. It runs on a timer (the protocol's replication loop)
 * and at once whenever something changes the picture: a file committed, a keeper dead, a keeper
 * back. Copies are pulled by the destination from a source, many at a time.
 */
export class Replicator {
  readonly #inFlight = new Map<string, Set<string>>()
  readonly #running = new Set<Promise<void>>()
  readonly #failedAt = new Map<string, number>()
  #timer: NodeJS.Timeout | undefined
  #scheduled = false
  #stopped = false

  constructor(
    private readonly table: MasterTable,
    private readonly keepers: KeeperRegistry,
    private readonly options: ReplicatorOptions,
  ) {}

  start(): void {
    this.#timer = setInterval(() => this.trigger(), this.options.intervalMs)
    this.trigger()
  }

  async stop(): Promise<void> {
    this.#stopped = true
    clearInterval(this.#timer)
    await Promise.allSettled([...this.#running])
  }

  /** Asks for a pass soon; many triggers in a row make one pass. */
  trigger(): void {
    if (this.#scheduled || this.#stopped) return
    this.#scheduled = true
    setTimeout(() => {
      this.#scheduled = false
      if (!this.#stopped) this.#pass()
    }, 0)
  }

  #pass(): void {
    const files = this.#fileReplicas()
    const keepers = this.keepers.loads()
    // A keeper a copy just failed with is left out of new copies for a moment: it is often one
    // that died and is not declared dead yet, and retrying it at once only fails again.
    const now = Date.now()
    const usable = keepers.map((keeper) => ((this.#failedAt.get(keeper.id) ?? 0) > now - COOL_DOWN_MS ? {...keeper, alive: false} : keeper))
    const copies = planRepairs({files, keepers: usable, target: this.options.replicas, inFlight: this.#inFlight, maxPerDestination: MAX_COPIES_PER_DESTINATION})
    for (const task of copies) this.#track(this.#copy(task))
    // Surplus copies go only from keepers heard from just now, never from one that may be dying.
    const heard = keepers.filter((keeper) => this.keepers.heardWithin(keeper.id, this.options.heartbeatTimeoutMs / 2))
    for (const task of planTrims(files, heard, this.options.replicas, this.#inFlight)) this.#track(this.#trim(task))
  }

  #fileReplicas(): FileReplicas[] {
    const holders = new Map<string, string[]>()
    for (const replica of this.table.replicas()) {
      const list = holders.get(replica.fileId)
      if (list) list.push(replica.keeperId)
      else holders.set(replica.fileId, [replica.keeperId])
    }

    const doomed = this.table.pendingDeletesByFile()
    return this.table.files().map((file) => ({
      fileId: file.fileId,
      name: file.name,
      size: file.size,
      holders: holders.get(file.fileId) ?? [],
      excluded: doomed.get(file.fileId),
    }))
  }

  #track(work: Promise<void>): void {
    this.#running.add(work)
    void work.finally(() => this.#running.delete(work))
  }

  async #copy(task: CopyTask): Promise<void> {
    const file = this.table.fileById(task.fileId)
    const source = this.keepers.get(task.source)
    const destination = this.keepers.get(task.destination)
    if (!file || !source || !destination) return
    const destinations = this.#inFlight.get(task.fileId) ?? new Set<string>()
    this.#inFlight.set(task.fileId, destinations.add(task.destination))
    this.keepers.assigned(task.source)
    this.keepers.assigned(task.destination)
    const order: ReplicateRequest = {fileId: file.fileId, name: file.name, size: file.size, sha256: file.sha256, source: source.url}
    try {
      const stored = await callJson<{path: string}>('keeper', destination.url, '/replicate', {
        body: order,
        timeout: Math.max(60_000, file.size / SLOWEST_COPY_BYTES_PER_MS),
      })
      // The destination reported the copy itself; recording it again here is harmless and closes
      // the gap if that report was lost.
      if (this.table.fileById(file.fileId)) {
        this.table.addReplica({fileId: file.fileId, keeperId: task.destination, path: stored.path})
        const alive = this.table.replicasOf(file.fileId).filter((replica) => this.keepers.get(replica.keeperId)?.alive).length
        if (alive >= this.options.replicas) this.table.clearCorrupt(file.fileId)
      }
      this.options.log.info(`copied "${file.name}" from ${task.source} to ${task.destination} (${task.aliveReplicas + 1} alive replicas)`)
    } catch (error) {
      this.options.log.warn(`copy of "${file.name}" from ${task.source} to ${task.destination} failed: ${(error as Error).message}`)
      this.#failedAt.set(task.source, Date.now())
      this.#failedAt.set(task.destination, Date.now())
      setTimeout(() => this.trigger(), COOL_DOWN_MS).unref()
      return
    } finally {
      destinations.delete(task.destination)
      if (destinations.size === 0) this.#inFlight.delete(task.fileId)
    }

    this.trigger()
  }

  async #trim(task: TrimTask): Promise<void> {
    this.table.transaction(() => {
      this.table.removeReplica(task.fileId, task.keeper)
      this.table.addPendingDelete(task.keeper, {fileId: task.fileId, name: task.name})
    })
    this.options.log.info(`trimming surplus replica of "${task.name}" on ${task.keeper}`)
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
      await callJson('keeper', keeper.url, `/files/${encodeURIComponent(command.name)}?fileId=${command.fileId}`, {method: 'DELETE'})
      this.table.clearPendingDelete(keeperId, command.fileId)
    } catch (error) {
      if ((error as {code?: string}).code === 'DFS_ERR_NOT_FOUND') this.table.clearPendingDelete(keeperId, command.fileId)
    }
  }
}
