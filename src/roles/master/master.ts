import {Registry} from 'prom-client'

import type {ClusterKey} from '../../lib/cluster-key.js'
import {DEFAULTS} from '../../lib/config.js'
import {DfsError, asDfsError} from '../../lib/errors.js'
import {GRANT_TTL_SECONDS, grantUrl, mintGrant, type GrantOp} from '../../lib/grants.js'
import {newId} from '../../lib/ids.js'
import {memberCredentials, newMember, type Member, type VerifiedMember} from '../../lib/member-auth.js'
import {assertValidName} from '../../lib/names.js'
import {Peer} from '../../lib/peer-client.js'
import {
  DEFAULT_ZONE,
  keeperRoutes,
  type ForgottenKeeper,
  type BatchMiss,
  type CommitBatchAnswer,
  type CommitBatchRequest,
  type CommitRequest,
  type CorruptAnswer,
  type CorruptReport,
  type DeleteCommand,
  type FileHealth,
  type FsckFile,
  type FsckReport,
  type SuspectReport,
  type SuspectVerdict,
  type FileInfo,
  type FileSummary,
  type FileUrl,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type InventoryItem,
  type KeeperInfo,
  type ListQuery,
  type LookupMiss,
  type ListResponse,
  type RegisterRequest,
  type RegisterResponse,
  type RemovedFile,
  type ReplicaBatchAnswer,
  type ReplicaBatchReport,
  type ReplicaReport,
  type RevokeTokenResponse,
  type UploadRequest,
  type UploadTicket,
  type SealRequest,
  type SealTicket,
} from '../../lib/protocol.js'
import {KeeperBindings, isCopyOrderOf} from './auth.js'
import {KeeperRegistry} from './keeper-registry.js'
import {MasterMetrics, type Census} from './metrics.js'
import {pickPipeline, pickUploadTarget, placementGoal, standingOf, tallyOf, type KeeperLoad, type PlacementGoal, type Tally} from './placement.js'
import {asideRow, lateVerdict, olderGeneration, resolveInventories, type Sighting} from './recovery.js'
import {Replicator} from './replicator.js'
import {MasterTable, type FileRow, type KeeperRow, type ReplicaRow} from './table.js'

export interface MasterOptions {
  dataDir: string
  /** Wanted replicas per file (capped at the number of alive keepers). */
  replicas: number
  heartbeatTimeoutMs: number
  replicationIntervalMs: number
  /** The connection pool for orders to keepers (one that trusts --ca); by default the process's one. */
  agent?: Peer['agent']
  log: {info(message: string): void; warn(message: string): void}
  /** The cluster key: with it, keepers must prove they are members (and the master proves it to them), and the master hands out grants that keepers ask for. */
  clusterKey?: ClusterKey
  /**
   * Rebuild a lost (empty) table from the keepers' inventories: listen for `windowMs`, or until
   * `keepers` keepers registered, then build the table (recovery.ts); later inventories are merged.
   */
  recover?: {windowMs: number; keepers?: number}
  /** Where its metrics go (one registry per master); a registry of its own when absent. */
  registry?: Registry
  /** Serve /metrics without a client token even with a cluster key (--metrics-public). */
  metricsPublic?: boolean
  /** Uploads begun and not committed, at most (default DEFAULTS.maxPendingUploads); more are refused with 429. */
  maxPendingUploads?: number
}

/** The inventories heard while a rebuild of the table listens, before it builds the table. */
interface RecoveryWindow {
  sightings: Sighting[]
  keepers: Set<string>
  timer?: NodeJS.Timeout
}

interface Ticket extends UploadRequest {
  keeperId: string
  createdAt: number
  /** The keepers of its write pipeline after the first, when the client asked for one. */
  pipelineIds?: string[]
}

// An upload that has not committed within a day is abandoned; its ticket goes.
const TICKET_TTL_MS = 24 * 60 * 60 * 1000

/**
 * The master tracker: the file table, who is alive, where uploads go, and the repair of every
 * file to its replica target. HTTP lives in server.ts; this class is the logic behind it.
 */
export class Master {
  readonly table: MasterTable
  readonly keepers: KeeperRegistry
  readonly replicator: Replicator
  readonly metrics: MasterMetrics
  readonly #tickets = new Map<string, Ticket>()
  readonly #ticketSweep: NodeJS.Timeout
  /** This master as a member of its cluster, for the credentials of its orders. */
  readonly #self: Member = newMember('master')
  readonly #bindings = new KeeperBindings()
  /** Open while a rebuild of the table listens to inventories. */
  #window: RecoveryWindow | undefined

  constructor(readonly options: MasterOptions) {
    this.table = new MasterTable(options.dataDir)
    if (options.recover) {
      if (!this.table.isEmpty()) {
        this.table.close()
        throw new DfsError('DFS_ERR_BAD_REQUEST', `--recover rebuilds a lost table, but the one in ${options.dataDir} holds files; start without --recover, or move it away first`)
      }

      this.#window = {sightings: [], keepers: new Set()}
    }

    this.metrics = new MasterMetrics(options.registry ?? new Registry(), () => this.census())
    this.keepers = new KeeperRegistry(this.table, options.heartbeatTimeoutMs, (id) => {
      options.log.warn(`keeper ${id} missed its heartbeats for ${options.heartbeatTimeoutMs} ms: marked dead`)
      this.replicator.trigger({full: true})
    })
    this.replicator = new Replicator(this.table, this.keepers, {
      keeperAt: (keeper) => this.keeperAt(keeper),
      clusterKey: options.clusterKey,
      replicas: options.replicas,
      intervalMs: options.replicationIntervalMs,
      heartbeatTimeoutMs: options.heartbeatTimeoutMs,
      log: options.log,
      metrics: this.metrics,
    })
    this.#ticketSweep = setInterval(() => this.#sweepTickets(), 60_000).unref()
  }

  /** A keeper, to give orders to: with a cluster key, each carries the master's member credential for that keeper. */
  keeperAt(keeper: {id: string; url: string}): Peer {
    const key = this.options.clusterKey
    const credentials = key ? memberCredentials(key, () => this.#self, {keeperId: keeper.id}) : undefined
    return new Peer({role: 'keeper', baseUrl: keeper.url, credentials, agent: this.options.agent})
  }

  start(): void {
    this.keepers.start()
    const window = this.#window
    if (!window) {
      this.replicator.start()
      return
    }

    const {windowMs, keepers} = this.options.recover!
    const until = keepers === undefined ? '' : ` or until ${keepers} keepers registered`
    this.options.log.warn(`recovering the file table from the keepers' inventories: listening for ${windowMs} ms${until}`)
    window.timer = setTimeout(() => this.#buildRecoveredTable(), windowMs)
  }

  /**
   * Throws DFS_ERR_NOT_READY unless the table is open and answers a read (GET /ready). A master
   * rebuilding its table is ready: keepers must reach it to send the inventories it waits for.
   */
  assertReady(): void {
    try {
      this.table.probe()
    } catch (error) {
      throw new DfsError('DFS_ERR_NOT_READY', `the master cannot read its table: ${(error as Error).message}`, {cause: error})
    }
  }

  /** Whether a rebuild of the table is still listening to inventories (files are not known yet). */
  get recovering(): boolean {
    return this.#window !== undefined
  }

  /** The window closes: the table is built from every inventory heard (recovery.ts), and repair starts. */
  #buildRecoveredTable(): void {
    const window = this.#window
    if (!window) return
    clearTimeout(window.timer)
    this.#window = undefined
    const {files, setAside} = resolveInventories(window.sightings)
    this.table.transaction(() => {
      for (const {file, replicas} of files) this.table.insertFile(file, replicas.map((replica) => replica.keeperId))
      for (const row of setAside) this.table.addSetAside(row)
    })
    this.options.log.warn(`recovered ${files.length} files from the inventories of ${window.keepers.size} keepers; ${setAside.length} replicas set aside (dfs fsck lists them)`)
    for (const row of setAside) this.options.log.warn(`set aside "${row.name}" (${row.fileId}) on ${row.keeperId}: ${row.reason}`)
    this.replicator.start()
  }

  /**
   * After a rebuild, a keeper reports a file the table does not have (it registered late, or
   * restarted): it is merged by the rules of recovery.ts. Returns whether its replica is used.
   */
  #mergeLate(keeperId: string, item: InventoryItem, sameId: FileRow | undefined): boolean {
    const setAside = (reason: string) => {
      this.table.addSetAside(asideRow(keeperId, item, reason))
      this.options.log.warn(`set aside "${item.name}" (${item.fileId}) on ${keeperId}: ${reason}`)
      return false
    }

    if (sameId) return setAside(`differs from the recorded description of file id ${item.fileId}`)
    if (this.table.isSetAside(item.fileId)) return setAside(`file id ${item.fileId} was set aside before`)
    const recorded = this.table.fileByName(item.name)
    const verdict = lateVerdict(item, recorded)
    if (verdict === 'aside') return setAside(olderGeneration(item.name, recorded!.fileId))
    if (verdict === 'replaces') {
      this.table.moveAside(recorded!, olderGeneration(recorded!.name, item.fileId))
      this.options.log.warn(`set aside "${recorded!.name}" (${recorded!.fileId}): ${olderGeneration(recorded!.name, item.fileId)}, which keeper ${keeperId} reported late`)
    }

    this.table.insertFile({fileId: item.fileId, name: item.name, size: item.size, sha256: item.sha256, createdAt: item.createdAt ?? 0}, [keeperId])
    return true
  }

  async stop(): Promise<void> {
    clearTimeout(this.#window?.timer)
    clearInterval(this.#ticketSweep)
    this.keepers.stop()
    await this.replicator.stop()
    this.table.close()
  }

  // ---- keepers --------------------------------------------------------------------------------

  /**
   * A keeper (re)joins with its inventory (a block report). Replicas the table knows are (re)attached;
   * replicas of deleted files are to be deleted; replicas the table expected there but the keeper no
   * longer has are detached. Files the master has never heard of are left alone and only logged: a
   * master started on the wrong or a lost --data must not make keepers destroy their files. Uploads
   * the keeper never heard the commit of (`undecided`) are answered by file id: recorded (kept and
   * counted) or not (the keeper removes them: they were never files).
   */
  register(request: RegisterRequest, member?: VerifiedMember): RegisterResponse {
    this.#bindings.checkRegistration(member, request.id, (id) => this.keepers.get(id)?.alive === true)
    const id = request.id ?? `k${newId(6)}`
    const zone = request.zone ?? DEFAULT_ZONE
    this.#bindings.bind(member, id)
    const undecided = request.undecided ?? []
    const window = this.#window
    if (window) {
      this.keepers.upsert(id, request, zone)
      // A keeper registering again (restarted) replaces what it said before. Its undecided uploads
      // count as its files: a table rebuilt from the keepers keeps every byte they hold, and one of
      // these may be the only copy of a file the lost table had recorded.
      window.sightings = [...window.sightings.filter((sighting) => sighting.keeperId !== id), ...[...request.inventory, ...undecided].map((item) => ({keeperId: id, item}))]
      window.keepers.add(id)
      this.options.log.info(`keeper ${id} registered at ${request.url} with ${request.inventory.length} files, heard for the recovery of the table`)
      const expected = this.options.recover?.keepers
      if (expected !== undefined && window.keepers.size >= expected) this.#buildRecoveredTable()
      return {id, deletes: [], ...(undecided.length > 0 ? {recorded: undecided.map((item) => item.fileId)} : {})}
    }

    let unknown = 0
    const recorded: string[] = []
    const deletes: DeleteCommand[] = this.table.transaction(() => {
      this.keepers.upsert(id, request, zone)
      const pending = this.table.pendingDeletes(id)
      // A replica this keeper is about to be told to delete (a surplus copy trimmed, a file removed)
      // must not be counted again just because it is still on its disk.
      const doomed = new Set(pending.map((command) => command.fileId))
      const commands: DeleteCommand[] = [...pending]
      const held = new Set<string>()
      for (const item of request.inventory) {
        const file = this.table.fileById(item.fileId)
        if (doomed.has(item.fileId)) continue
        // By generation, not by name: a renamed file keeps its id (dfs mv moves no bytes).
        if (file && file.size === item.size && file.sha256 === item.sha256) {
          this.table.addReplica({fileId: item.fileId, keeperId: id})
          if (file.name !== item.name) this.table.addPendingRename(id, {fileId: item.fileId, name: file.name})
          held.add(item.fileId)
        } else if (this.table.isDeleted(item.fileId)) {
          commands.push({fileId: item.fileId, name: item.name})
        } else if (this.options.recover && !this.#tickets.has(item.fileId)) {
          if (this.#mergeLate(id, item, file)) held.add(item.fileId)
        } else if (!this.#tickets.has(item.fileId)) {
          unknown++
        }
      }

      for (const item of undecided) {
        // An upload whose commit the keeper never heard answered, by file id (the name may have
        // moved on since): recorded if the table has this very generation, else never committed,
        // and it cannot be now (the process that would commit it is gone). With a rebuilt table, it
        // is merged as a late inventory would be.
        const file = this.table.fileById(item.fileId)
        const known = file !== undefined && file.size === item.size && file.sha256 === item.sha256 && !doomed.has(item.fileId)
        if (known) {
          this.table.addReplica({fileId: item.fileId, keeperId: id})
          if (file.name !== item.name) this.table.addPendingRename(id, {fileId: item.fileId, name: file.name})
        }

        if (known || (!file && this.options.recover && !this.#tickets.has(item.fileId) && this.#mergeLate(id, item, undefined))) {
          held.add(item.fileId)
          recorded.push(item.fileId)
        } else if (this.#tickets.get(item.fileId)?.keeperId === id) {
          this.#tickets.delete(item.fileId)
        }
      }

      for (const replica of this.table.replicasOn(id)) {
        if (!held.has(replica.fileId)) this.table.removeReplica(replica.fileId, id)
      }

      return commands
    })
    this.options.log.info(`keeper ${id} registered at ${request.url} in zone ${zone} with ${request.inventory.length} files`)
    if (unknown > 0) this.options.log.warn(`keeper ${id} holds ${unknown} files this master has no record of; they are kept, not used`)
    if (undecided.length > 0) {
      this.options.log.info(`keeper ${id} holds ${undecided.length} ${undecided.length === 1 ? 'upload' : 'uploads'} whose commit it never heard answered: ${recorded.length} recorded (kept), ${undecided.length - recorded.length} not (removed)`)
    }

    this.replicator.trigger({full: true})
    return {id, deletes, ...(undecided.length > 0 ? {recorded} : {})}
  }

  /**
   * A keeper's heartbeat. Delete orders are sent with every answer until the keeper says it carried
   * them out: until then the replica is neither counted nor chosen to receive a new copy.
   */
  heartbeat(id: string, request: HeartbeatRequest, member?: VerifiedMember): HeartbeatResponse {
    this.#bindings.requireKeeper(member, id)
    const heldRepairs = this.keepers.deathsUnconfirmed()
    const cameBack = this.keepers.heartbeat(id, request)
    if (cameBack) this.options.log.info(`keeper ${id} is alive again`)
    if (cameBack || heldRepairs) this.replicator.trigger({full: true})

    if (request.deleted?.length) {
      this.table.transaction(() => {
        for (const fileId of request.deleted!) this.table.clearPendingDelete(id, fileId)
      })
    }

    if (request.renamed?.length) {
      this.table.transaction(() => {
        for (const command of request.renamed!) this.table.clearPendingRename(id, command)
      })
    }

    const renames = this.table.pendingRenames(id)
    return {deletes: this.table.pendingDeletes(id), ...(renames.length > 0 ? {renames} : {})}
  }

  status(): KeeperInfo[] {
    const counts = new Map<string, number>()
    for (const {holders} of this.table.allHolders()) for (const id of holders) counts.set(id, (counts.get(id) ?? 0) + 1)
    const loads = new Map(this.keepers.loads().map((keeper) => [keeper.id, keeper.load]))
    return this.keepers.list().map((keeper) => this.#keeperInfo(keeper, counts.get(keeper.id) ?? 0, loads.get(keeper.id) ?? 0))
  }

  #keeperInfo(keeper: KeeperRow, files: number, load: number): KeeperInfo {
    return {
      id: keeper.id,
      url: keeper.url,
      alive: keeper.alive,
      lastHeartbeat: keeper.lastHeartbeat === null ? null : new Date(keeper.lastHeartbeat).toISOString(),
      files,
      storedBytes: keeper.storedBytes,
      freeBytes: keeper.freeBytes,
      activeTransfers: load,
      zone: keeper.zone,
      drain: keeper.drain,
    }
  }

  #knownKeeper(id: string): KeeperRow {
    const keeper = this.keepers.get(id)
    if (!keeper) throw new DfsError('DFS_ERR_UNKNOWN_KEEPER', `no keeper ${id} is registered`)
    return keeper
  }

  /**
   * Starts draining a keeper (like an HDFS decommission): it takes no new uploads or copies, its
   * replicas stop counting toward their files' targets, so the replicator copies them elsewhere;
   * once every file it holds has its full count elsewhere, its copies are deleted (replicator.ts).
   * Draining a keeper already draining or drained changes nothing.
   */
  drainKeeper(id: string): KeeperInfo {
    const keeper = this.#knownKeeper(id)
    if (keeper.drain === null) {
      this.keepers.setDrain(id, 'draining')
      this.options.log.info(`keeper ${id} is draining: its files are copied to other keepers`)
      this.replicator.trigger({full: true})
    }

    return this.status().find((info) => info.id === id)!
  }

  /**
   * Forgets a keeper that is dead or drained: it leaves `status`, and its replicas leave the table
   * (files short of their target are copied again). A live keeper that is not drained is refused:
   * it still holds replicas the cluster counts on. One that still runs comes back as a new member
   * at its next heartbeat.
   */
  forgetKeeper(id: string): ForgottenKeeper {
    const keeper = this.#knownKeeper(id)
    if (keeper.alive && keeper.drain !== 'drained') {
      throw new DfsError('DFS_ERR_KEEPER_IN_USE', `keeper ${id} is alive and not drained; drain it first (dfs keeper drain ${id}), or stop it`)
    }

    const replicas = this.table.forgetKeeper(id)
    this.keepers.forget(id)
    this.options.log.info(`keeper ${id} forgotten with its ${replicas} replicas`)
    this.replicator.trigger({full: true})
    return {id, forgotten: true, replicas}
  }

  // ---- uploads --------------------------------------------------------------------------------

  /**
   * Step 1 of an upload: check the name, pick the least-loaded alive keeper, hand out a ticket
   * (with a `write` grant for that keeper, for this upload id, name, size and sha256).
   */
  async beginUpload(request: UploadRequest): Promise<UploadTicket> {
    return this.#granted(this.#place(request))
  }

  /**
   * An upload's keeper (and pipeline) picked and its ticket kept, in one turn of the event loop: no
   * heartbeat can come between the load it was picked by and the load it adds.
   */
  #place(request: UploadRequest): Placed {
    assertValidName(request.name)
    this.#assertNotRecovering()
    if (!request.replace) this.#assertFree(request.name)
    const exclude = new Set(request.exclude ?? [])
    const keepers = this.keepers.loads()
    const target = pickUploadTarget(keepers, request.size, exclude)
    if (!target) throw noTarget(keepers, request.size, exclude)
    const cap = this.options.maxPendingUploads ?? DEFAULTS.maxPendingUploads
    if (this.#tickets.size >= cap) this.#sweepTickets()
    if (this.#tickets.size >= cap) {
      throw new DfsError('DFS_ERR_TOO_MANY_UPLOADS', `${cap} uploads are under way and not committed; try again later`)
    }

    const uploadId = newId()
    // Only a one-pass upload rides a pipeline: its keepers hold bytes whose sha256 nobody named yet, as the first does.
    const chain = request.pipeline && request.sha256 === undefined ? pickPipeline(keepers, request.size, target, this.options.replicas, exclude) : []
    this.#tickets.set(uploadId, {...request, keeperId: target.id, createdAt: Date.now(), ...(chain.length > 0 ? {pipelineIds: chain.map((keeper) => keeper.id)} : {})})
    this.keepers.assigned(target.id)
    for (const keeper of chain) this.keepers.assigned(keeper.id)
    return {uploadId, request, targetId: target.id, chainIds: chain.map((keeper) => keeper.id)}
  }

  /** A placed upload's ticket, with its grants. */
  async #granted({uploadId, request, targetId, chainIds}: Placed): Promise<UploadTicket> {
    // A one-pass upload's grant names no sha256 (""): it lets the keeper hold the bytes, and only the seal's grant names the digest.
    const held = {fileId: uploadId, name: request.name, size: request.size, sha256: request.sha256 ?? ''}
    const grant = await this.#grant('write', held, targetId)
    const pipeline = await Promise.all(
      chainIds.map(async (id) => {
        // The grant names the keeper's URL too: the keeper before it forwards there and nowhere else.
        const url = this.keepers.get(id)!.url
        const keeperGrant = await this.#grant('write', held, id, undefined, url)
        return {id, url, ...(keeperGrant ? {grant: keeperGrant} : {})}
      }),
    )
    return {uploadId, keeper: {id: targetId, url: this.keepers.get(targetId)!.url}, ...(grant ? {grant} : {}), ...(pipeline.length > 0 ? {pipeline} : {})}
  }

  /**
   * Tickets for many uploads at once, each as `beginUpload` gives it (its keeper picked after the
   * ones before it were counted, so a batch spreads as single tickets do: all are placed before any
   * grant is signed, so no heartbeat resets the load between two of them); an upload refused gets
   * its error in its place, and the others their tickets.
   */
  async beginUploads(requests: UploadRequest[]): Promise<Array<UploadTicket | BatchMiss>> {
    const placed = requests.map((request): Placed | BatchMiss => {
      try {
        return this.#place(request)
      } catch (error) {
        if (!(error instanceof DfsError)) throw error
        return {error: error.code, message: error.message}
      }
    })
    return Promise.all(placed.map(async (upload) => ('error' in upload ? upload : this.#granted(upload))))
  }

  /**
   * A one-pass upload's client names the sha256 it computed while sending (after the keeper holds
   * the bytes): the ticket takes it, so that the keeper's commit must match the client's word and not
   * only its own, and the keeper gets a grant to seal that digest.
   */
  async sealUpload(uploadId: string, request: SealRequest): Promise<SealTicket> {
    const ticket = this.#tickets.get(uploadId)
    if (!ticket) throw new DfsError('DFS_ERR_UNKNOWN_UPLOAD', `upload ${uploadId} is unknown to the master (expired, or the master restarted)`)
    if (ticket.sha256 !== undefined && ticket.sha256 !== request.sha256) {
      throw new DfsError('DFS_ERR_CHECKSUM_MISMATCH', `upload ${uploadId} was announced with sha256 ${ticket.sha256}, not ${request.sha256}`)
    }

    ticket.sha256 = request.sha256
    const sealed = {fileId: uploadId, name: ticket.name, size: ticket.size, sha256: request.sha256}
    const grant = await this.#grant('write', sealed, ticket.keeperId)
    if (!grant) return {}
    // Each pipeline keeper is sealed by the keeper before it, with its own grant naming this digest.
    const pipeline = await Promise.all((ticket.pipelineIds ?? []).map(async (id) => ({id, grant: (await this.#grant('write', sealed, id))!})))
    return {grant, ...(pipeline.length > 0 ? {pipeline} : {})}
  }

  /**
   * Step 2, from the keeper that stored the bytes: record the file with its first replica. Only
   * now is the upload confirmed; the keeper passes the answer on to the client. An upload that
   * replaces (`put --force`) takes the name from the file that held it in the same transaction,
   * and only then are the old generation's replicas deleted, as `rm` deletes them: a reader sees
   * the old file or the new one, each whole.
   */
  commitUpload(uploadId: string, request: CommitRequest, member?: VerifiedMember): FileInfo {
    return this.fileInfo(this.#recordUpload(uploadId, request, member))
  }

  /** `commitUpload` without its answer: the file recorded. */
  #recordUpload(uploadId: string, request: CommitRequest, member?: VerifiedMember): FileRow {
    this.#bindings.requireKeeper(member, request.keeperId)
    const ticket = this.#tickets.get(uploadId)
    if (!ticket) throw new DfsError('DFS_ERR_UNKNOWN_UPLOAD', `upload ${uploadId} is unknown to the master (expired, or the master restarted)`)
    if (member && ticket.keeperId !== request.keeperId) {
      throw new DfsError('DFS_ERR_FORBIDDEN', `upload ${uploadId} was given to keeper ${ticket.keeperId}; only it commits it`)
    }
    if (ticket.keeperId !== request.keeperId) {
      throw new DfsError('DFS_ERR_BAD_REQUEST', `upload ${uploadId} was given to keeper ${ticket.keeperId}, not ${request.keeperId}`)
    }

    if (ticket.name !== request.name) {
      throw new DfsError('DFS_ERR_BAD_REQUEST', `upload ${uploadId} is for "${ticket.name}", not "${request.name}"`)
    }

    if (ticket.size !== request.size) {
      throw new DfsError('DFS_ERR_SIZE_MISMATCH', `the keeper stored ${request.size} bytes but ${ticket.size} were announced`)
    }

    if (ticket.sha256 === undefined) {
      throw new DfsError('DFS_ERR_CHECKSUM_MISMATCH', `upload ${uploadId} is not sealed: its client has named no sha256 yet`)
    }

    if (ticket.sha256 !== request.sha256) {
      throw new DfsError('DFS_ERR_CHECKSUM_MISMATCH', `the keeper stored sha256 ${request.sha256} but ${ticket.sha256} was announced`)
    }

    this.#tickets.delete(uploadId)
    if (!ticket.replace) this.#assertFree(ticket.name)
    // The media description is the keeper's claim, already held to the protocol's bounds: display only.
    const file: FileRow = {fileId: uploadId, name: ticket.name, size: ticket.size, sha256: request.sha256, createdAt: Date.now(), media: request.media ?? null}
    const old = ticket.replace ? this.table.fileByName(ticket.name) : undefined
    const oldReplicas = this.table.transaction(() => {
      const replicas = old ? this.table.deleteFile(old) : []
      this.table.insertFile(file, [request.keeperId])
      return replicas
    })
    if (old) this.#deleteReplicas(old, oldReplicas)
    this.metrics.uploadsCommitted.inc()
    // The pipeline's keepers the first one names hold these bytes and are being sealed: copies under
    // way, so the replicator orders none to them. Only keepers the ticket named are believed.
    const pipelined = (request.pipeline ?? []).filter((id) => id !== request.keeperId && ticket.pipelineIds?.includes(id))
    if (pipelined.length > 0) this.replicator.expectPipelined(uploadId, pipelined)
    this.replicator.trigger()
    return file
  }

  /**
   * A keeper's commits of uploads that finished together: the sender must be `keeperId`, and each
   * commit is checked and recorded exactly as `commitUpload` does one, and answered on its own.
   */
  commitUploads(request: CommitBatchRequest, member?: VerifiedMember): CommitBatchAnswer['commits'] {
    this.#bindings.requireKeeper(member, request.keeperId)
    return request.commits.map(({uploadId, ...commit}) => {
      try {
        return {uploadId, fileId: this.#recordUpload(uploadId, commit, member).fileId}
      } catch (error) {
        // Even a bug fails its commit alone: the commits before it are recorded, and must be answered so.
        const failure = asDfsError(error)
        if (!(error instanceof DfsError)) this.options.log.warn(`commit of upload ${uploadId} failed: ${(error as Error).stack ?? String(error)}`)
        return {uploadId, error: failure.code, message: failure.message}
      }
    })
  }

  /** While the table is rebuilt, no name is known to be free or taken. */
  #assertNotRecovering(): void {
    if (this.#window) throw new DfsError('DFS_ERR_RECOVERING', 'the master is rebuilding its file table from the keepers\' inventories; try again in a moment')
  }

  #assertFree(name: string): void {
    if (this.table.fileByName(name)) throw new DfsError('DFS_ERR_EXISTS', `a file named "${name}" already exists`)
  }

  #sweepTickets(): void {
    const now = Date.now()
    for (const [id, ticket] of this.#tickets) if (now - ticket.createdAt > TICKET_TTL_MS) this.#tickets.delete(id)
  }

  /**
   * A keeper reports a copy it now holds durably (after a replication order). With a cluster key,
   * only a copy this master ordered of that keeper counts: one under way, or one whose order's
   * grant the keeper hands back (the master restarted meanwhile).
   */
  async reportReplica(name: string, report: ReplicaReport, member?: VerifiedMember): Promise<FileInfo> {
    this.#bindings.requireKeeper(member, report.keeperId)
    return this.fileInfo(await this.#countCopy(name, report, member))
  }

  /**
   * reportReplica for the copies of one batched order: each is checked and counted alone, and one
   * refused (a file deleted meanwhile, a copy not ordered) is answered with its error while the
   * others count.
   */
  async reportReplicas(report: ReplicaBatchReport, member?: VerifiedMember): Promise<ReplicaBatchAnswer> {
    this.#bindings.requireKeeper(member, report.keeperId)
    const copies: ReplicaBatchAnswer['copies'] = []
    for (const {name, ...copy} of report.copies) {
      try {
        await this.#countCopy(name, {keeperId: report.keeperId, ...copy}, member)
        copies.push({fileId: copy.fileId, counted: true})
      } catch (error) {
        if (!(error instanceof DfsError)) throw error
        copies.push({fileId: copy.fileId, counted: false, error: error.code, message: error.message})
      }
    }

    return {copies}
  }

  /** Records a reported copy once it is the current generation and one this master ordered of that keeper. */
  async #countCopy(name: string, report: ReplicaReport, member: VerifiedMember | undefined): Promise<FileRow> {
    const file = this.#file(name)
    if (file.fileId !== report.fileId || file.size !== report.size || file.sha256 !== report.sha256) {
      throw new DfsError('DFS_ERR_STALE_REPLICA', `the reported copy is not the current "${name}" (${file.fileId})`)
    }

    if (!this.keepers.get(report.keeperId)) throw new DfsError('DFS_ERR_UNKNOWN_KEEPER', `keeper ${report.keeperId} is not registered`)
    const key = this.options.clusterKey
    if (member && key && !this.replicator.isCopyUnderWay(file.fileId, report.keeperId) && !(await isCopyOrderOf(key, report.grant, file.fileId))) {
      throw new DfsError('DFS_ERR_FORBIDDEN', `the master ordered no copy of "${name}" (${file.fileId}) to keeper ${report.keeperId}`)
    }

    this.table.addReplica({fileId: file.fileId, keeperId: report.keeperId})
    this.replicator.pipelinedLanded(file.fileId, report.keeperId)
    return file
  }

  /** A keeper dropped a corrupt replica: stop counting it, and let the replicator copy a good one. */
  reportCorrupt(name: string, report: CorruptReport, member?: VerifiedMember): CorruptAnswer {
    this.#bindings.requireKeeper(member, report.keeperId)
    const file = this.#file(name)
    if (file.fileId !== report.fileId) return {dropped: false}
    // Only a holder's word drops a replica (a report sent again after its answer was lost finds none).
    if (member && !this.table.holdersOf(file.fileId)?.holders.has(report.keeperId)) return {dropped: false}
    this.table.markCorrupt(file.fileId, report.keeperId)
    this.metrics.corruptReported.inc()
    this.options.log.warn(`replica of "${name}" on ${report.keeperId} is corrupt; it was dropped and will be copied again`)
    this.replicator.trigger()
    return {dropped: true}
  }

  /**
   * A reader saw bytes that did not match. The master does not take a client's word for it: it
   * asks the keeper to re-hash its replica, and the keeper drops and reports it if it is bad.
   */
  async suspect(name: string, report: SuspectReport): Promise<SuspectVerdict> {
    const file = this.#file(name)
    const keeper = this.keepers.get(report.keeperId)
    if (!keeper) throw new DfsError('DFS_ERR_UNKNOWN_KEEPER', `keeper ${report.keeperId} is not registered`)
    if (file.fileId !== report.fileId) throw new DfsError('DFS_ERR_STALE_REPLICA', `"${name}" is now another file (${file.fileId})`)
    const verify = this.keeperAt(keeper).call(keeperRoutes.verify, {params: {name}, query: {fileId: file.fileId}}, {timeout: Math.max(60_000, file.size / 1024)})
    const result = await verify.catch((error: unknown) => {
      // A replica its keeper no longer has is as good as corrupt for the reader.
      if (error instanceof DfsError && error.code === 'DFS_ERR_NOT_FOUND') return {ok: false}
      throw error
    })
    if (!result.ok) this.table.removeReplica(file.fileId, keeper.id)
    return {keeper: keeper.id, corrupt: !result.ok}
  }

  /** Health of every file and of the whole (like `hdfs fsck`). */
  /** Puts a client token's id on the list of refused tokens; false if it was there already. */
  revokeToken(id: string): RevokeTokenResponse {
    return {id, revoked: true, newly: this.table.revokeToken(id)}
  }

  fsck(options: {brief?: boolean} = {}): FsckReport {
    const keepers = this.keepers.list()
    const corrupt = this.table.corruptCounts()
    const target = this.options.replicas
    const placement = this.#placement()
    const files: FsckFile[] = this.table.files().map((file) => {
      const holders = this.table.holdersOf(file.fileId)?.holders ?? new Set<string>()
      const standing = standingOf(holders, placement.keepers)
      return {
        name: file.name,
        fileId: file.fileId,
        size: file.size,
        alive: standing.counted.length,
        target,
        dead: holders.size - standing.sources.length,
        corrupt: corrupt.get(file.fileId) ?? 0,
        draining: standing.sources.length - standing.counted.length,
        zones: [...standing.zones].sort(),
        health: healthOf({sources: standing.sources.length, counted: standing.counted.length, zones: standing.zones.size}, target, placement.goal),
      }
    })
    const count = (health: FileHealth) => files.filter((file) => file.health === health).length
    const summary = {
      files: files.length,
      healthy: count('healthy'),
      underReplicated: count('under-replicated'),
      overReplicated: count('over-replicated'),
      singleZone: count('single-zone'),
      missing: count('missing'),
      corrupt: files.reduce((sum, file) => sum + file.corrupt, 0),
      aliveKeepers: keepers.filter((keeper) => keeper.alive).length,
      keepers: keepers.length,
    }
    const status = summary.missing > 0 ? 'missing' : summary.underReplicated > 0 ? 'under-replicated' : summary.singleZone > 0 ? 'single-zone' : 'healthy'
    if (options.brief) return {status, files: [], summary, recovering: this.recovering}
    return {status, files, summary, recovering: this.recovering, setAside: this.table.setAside()}
  }

  /**
   * The figures of the whole that /metrics shows, from memory (the holders index and the keeper
   * registry, as fsck's verdicts), never a scan of the table: it runs at every scrape.
   */
  census(): Census {
    const target = this.options.replicas
    const placement = this.#placement()
    const census: Census = {files: 0, bytes: 0, underReplicated: 0, missing: 0, copiesNeeded: 0, copiesInFlight: this.replicator.copiesInFlight, keepersAlive: 0, keepersDead: 0}
    for (const file of this.table.allHolders()) {
      census.files++
      census.bytes += file.size
      const tally = tallyOf(file.holders, placement.keepers)
      const health = healthOf(tally, target, placement.goal)
      if (health === 'missing') census.missing++
      if (health === 'under-replicated') {
        census.underReplicated++
        census.copiesNeeded += target - tally.counted
      }
    }

    for (const keeper of this.keepers.list()) {
      if (keeper.alive) census.keepersAlive++
      else census.keepersDead++
    }

    return census
  }

  /** The keepers as placement sees them, and the goal every file is held to now. */
  #placement(): {keepers: Map<string, KeeperLoad>; goal: PlacementGoal} {
    const loads = this.keepers.loads()
    return {keepers: new Map(loads.map((keeper) => [keeper.id, keeper])), goal: placementGoal(loads, this.options.replicas)}
  }

  // ---- files ----------------------------------------------------------------------------------

  #file(name: string): FileRow {
    assertValidName(name)
    const file = this.table.fileByName(name)
    if (!file) this.#assertNotRecovering()
    if (!file) throw new DfsError('DFS_ERR_NOT_FOUND', `no file named "${name}"`)
    return file
  }

  /** A file and its replicas, each with a `read` grant for its keeper when the cluster has a key. */
  async stat(name: string): Promise<FileInfo> {
    const file = this.#file(name)
    const info = this.fileInfo(file)
    for (const replica of info.replicas) {
      const grant = replica.url ? await this.#grant('read', file, replica.keeper) : undefined
      if (grant) replica.grant = grant
    }

    return info
  }

  /** `stat` of each name, in order; a name that fails as stat would (no such file, a bad name) is a miss, not a failure of the whole. */
  async lookup(names: string[]): Promise<Array<FileInfo | LookupMiss>> {
    const files: Array<FileInfo | LookupMiss> = []
    for (const name of names) {
      try {
        files.push(await this.stat(name))
      } catch (error) {
        if (!(error instanceof DfsError)) throw error
        files.push({name, error: error.code, message: error.message})
      }
    }

    return files
  }

  /**
   * A URL of the file at one alive keeper that answers GET and Range requests with no credential
   * but the read grant in its query string (`ttlSeconds` long), for a browser's <video> or curl.
   */
  async fileUrl(name: string, ttlSeconds = GRANT_TTL_SECONDS.read): Promise<FileUrl> {
    const file = this.#file(name)
    const replica = this.fileInfo(file).replicas.find((candidate) => candidate.alive && candidate.url)
    if (!replica) throw new DfsError('DFS_ERR_NO_KEEPERS', `no alive keeper holds a replica of "${name}" right now`)
    const grant = await this.#grant('read', file, replica.keeper, ttlSeconds)
    const plain = `${replica.url}/files/${encodeURIComponent(file.name)}`
    return {
      url: grant ? grantUrl(replica.url, file.name, grant) : plain,
      keeper: replica.keeper,
      expiresAt: grant ? new Date(Date.now() + ttlSeconds * 1000).toISOString() : null,
    }
  }

  /** A grant for `op` on this file at one keeper; none without a cluster key (nothing would check it). */
  async #grant(op: GrantOp, file: {fileId: string; name: string; size: number; sha256: string}, keeperId: string, ttlSeconds?: number, url?: string): Promise<string | undefined> {
    const key = this.options.clusterKey
    if (!key) return undefined
    return mintGrant(key, {op, fileId: file.fileId, name: file.name, size: file.size, sha256: file.sha256, keeperId, ...(url === undefined ? {} : {url})}, {ttlSeconds})
  }

  fileInfo(file: FileRow): FileInfo {
    const replicas = this.table.replicasOf(file.fileId).map((replica) => {
      const keeper = this.keepers.get(replica.keeperId)
      return {keeper: replica.keeperId, url: keeper?.url ?? '', alive: keeper?.alive ?? false, zone: keeper?.zone ?? '', draining: (keeper?.drain ?? null) !== null}
    })
    replicas.sort((a, b) => Number(b.alive) - Number(a.alive) || a.keeper.localeCompare(b.keeper))
    const placement = this.#placement()
    const health = healthOf(tallyOf(this.table.holdersOf(file.fileId)?.holders ?? [], placement.keepers), this.options.replicas, placement.goal)
    return {...describeFile(file), target: this.options.replicas, health, replicas}
  }

  /** The files matching `query` by name, with the name after which the next page starts (see ListQuery). */
  list(query: ListQuery = {}): ListResponse {
    this.#assertNotRecovering()
    // One row past the page says whether another page follows; a total only for a page that asks.
    const {files, total} = this.table.filesPage(query.limit === undefined ? {...query, total: false} : {...query, limit: query.limit + 1})
    const more = query.limit !== undefined && files.length > query.limit
    const placement = this.#placement()
    const summaries = files.slice(0, query.limit).map((file): FileSummary => {
      const holders = this.table.holdersOf(file.fileId)?.holders ?? new Set<string>()
      return {
        ...describeFile(file),
        replicas: this.keepers.countAlive(holders),
        target: this.options.replicas,
        health: healthOf(tallyOf(holders, placement.keepers), this.options.replicas, placement.goal),
        keepers: [...holders].sort(),
      }
    })
    if (query.limit === undefined) return {files: summaries}
    return {files: summaries, ...(total === undefined ? {} : {total}), ...(more ? {next: summaries.at(-1)!.name} : {})}
  }

  /**
   * Renames a file in the table alone: no bytes move, and keepers serve a generation by its id
   * whatever name their description still holds. Synchronous, so no other request sees the name
   * half taken.
   */
  move(name: string, to: string): FileInfo {
    assertValidName(to)
    const file = this.#file(name)
    if (to !== name) this.#assertFree(to)
    this.table.renameFile(file, to)
    return this.fileInfo({...file, name: to})
  }

  /** Forgets the file at once; every keeper holding a replica deletes it (now, or when it is back). */
  remove(name: string): RemovedFile {
    const file = this.#file(name)
    this.#deleteReplicas(file, this.table.deleteFile(file))
    return {name: file.name, fileId: file.fileId}
  }

  /** Orders the alive keepers among a forgotten file's holders to delete it now; the others get the order with their next heartbeat. */
  #deleteReplicas(file: FileRow, replicas: ReplicaRow[]): void {
    for (const replica of replicas) {
      if (this.keepers.get(replica.keeperId)?.alive) void this.replicator.deleteReplica(replica.keeperId, {fileId: file.fileId, name: file.name})
    }
  }
}

/** A file's health word (protocol.ts FileHealth): the worst thing true of it. */
function healthOf({sources, counted, zones}: Tally, target: number, goal: PlacementGoal): FileHealth {
  if (sources === 0) return 'missing'
  if (counted < target) return 'under-replicated'
  if (zones === 1 && goal.zones > 1) return 'single-zone'
  return counted > target ? 'over-replicated' : 'healthy'
}

function describeFile(file: FileRow): Omit<FileSummary, 'replicas' | 'target' | 'health' | 'keepers'> {
  return {name: file.name, fileId: file.fileId, size: file.size, sha256: file.sha256, createdAt: new Date(file.createdAt).toISOString(), media: file.media ?? null}
}

function noTarget(keepers: KeeperLoad[], size: number, exclude: ReadonlySet<string>): DfsError {
  const alive = keepers.filter((keeper) => keeper.alive && !keeper.draining && !exclude.has(keeper.id))
  if (alive.length === 0) {
    const tried = exclude.size > 0 ? ` (besides the ${exclude.size} already tried)` : ''
    const drained = keepers.some((keeper) => keeper.alive && keeper.draining) ? ' (draining keepers take none)' : ''
    return new DfsError('DFS_ERR_NO_KEEPERS', `no alive keepers to store the file${tried}${drained}`)
  }

  return new DfsError('DFS_ERR_INSUFFICIENT_STORAGE', `no alive keeper has ${size} bytes free`)
}

/** An upload placed on its keepers, its ticket kept, its grants still to sign. */
interface Placed {
  uploadId: string
  request: UploadRequest
  targetId: string
  chainIds: string[]
}
