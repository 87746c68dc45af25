import type {ClusterKey} from '../../lib/cluster-key.js'
import {DEFAULTS} from '../../lib/config.js'
import {DfsError} from '../../lib/errors.js'
import {GRANT_TTL_SECONDS, grantUrl, mintGrant, type GrantOp} from '../../lib/grants.js'
import {newId} from '../../lib/ids.js'
import {memberCredentials, newMember, type Member, type VerifiedMember} from '../../lib/member-auth.js'
import {assertValidName} from '../../lib/names.js'
import {Peer} from '../../lib/peer-client.js'
import {
  keeperRoutes,
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
  type KeeperInfo,
  type RegisterRequest,
  type RegisterResponse,
  type RemovedFile,
  type ReplicaReport,
  type RevokeTokenResponse,
  type UploadRequest,
  type UploadTicket,
} from '../../lib/protocol.js'
import {KeeperBindings, isCopyOrderOf} from './auth.js'
import {KeeperRegistry} from './keeper-registry.js'
import {pickUploadTarget} from './placement.js'
import {Replicator} from './replicator.js'
import {MasterTable, type FileRow} from './table.js'

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
  /** Uploads begun and not committed, at most (default DEFAULTS.maxPendingUploads); more are refused with 429. */
  maxPendingUploads?: number
}

interface Ticket extends UploadRequest {
  keeperId: string
  createdAt: number
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
  readonly #tickets = new Map<string, Ticket>()
  readonly #ticketSweep: NodeJS.Timeout
  /** This master as a member of its cluster, for the credentials of its orders. */
  readonly #self: Member = newMember('master')
  readonly #bindings = new KeeperBindings()

  constructor(readonly options: MasterOptions) {
    this.table = new MasterTable(options.dataDir)
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
    this.replicator.start()
  }

  async stop(): Promise<void> {
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
   * master started on the wrong or a lost --data must not make keepers destroy their files.
   */
  register(request: RegisterRequest, member?: VerifiedMember): RegisterResponse {
    this.#bindings.checkRegistration(member, request.id, (id) => this.keepers.get(id)?.alive === true)
    const id = request.id ?? `k${newId(6)}`
    this.#bindings.bind(member, id)
    let unknown = 0
    const deletes: DeleteCommand[] = this.table.transaction(() => {
      this.keepers.upsert(id, request)
      const pending = this.table.pendingDeletes(id)
      // A replica this keeper is about to be told to delete (a surplus copy trimmed, a file removed)
      // must not be counted again just because it is still on its disk.
      const doomed = new Set(pending.map((command) => command.fileId))
      const commands: DeleteCommand[] = [...pending]
      const held = new Set<string>()
      for (const item of request.inventory) {
        const file = this.table.fileById(item.fileId)
        if (doomed.has(item.fileId)) continue
        if (file && file.name === item.name && file.size === item.size && file.sha256 === item.sha256) {
          this.table.addReplica({fileId: item.fileId, keeperId: id})
          held.add(item.fileId)
        } else if (this.table.isDeleted(item.fileId)) {
          commands.push({fileId: item.fileId, name: item.name})
        } else if (!this.#tickets.has(item.fileId)) {
          unknown++
        }
      }

      for (const replica of this.table.replicasOn(id)) {
        if (!held.has(replica.fileId)) this.table.removeReplica(replica.fileId, id)
      }

      return commands
    })
    this.options.log.info(`keeper ${id} registered at ${request.url} with ${request.inventory.length} files`)
    if (unknown > 0) this.options.log.warn(`keeper ${id} holds ${unknown} files this master has no record of; they are kept, not used`)
    this.replicator.trigger({full: true})
    return {id, deletes}
  }

  /**
   * A keeper's heartbeat. Delete orders are sent with every answer until the keeper says it carried
   * them out: until then the replica is neither counted nor chosen to receive a new copy.
   */
  heartbeat(id: string, request: HeartbeatRequest, member?: VerifiedMember): HeartbeatResponse {
    this.#bindings.requireKeeper(member, id)
    const cameBack = this.keepers.heartbeat(id, request)
    if (cameBack) {
      this.options.log.info(`keeper ${id} is alive again`)
      this.replicator.trigger({full: true})
    }

    if (request.deleted?.length) {
      this.table.transaction(() => {
        for (const fileId of request.deleted!) this.table.clearPendingDelete(id, fileId)
      })
    }

    return {deletes: this.table.pendingDeletes(id)}
  }

  status(): KeeperInfo[] {
    const counts = new Map<string, number>()
    for (const {holders} of this.table.allHolders()) for (const id of holders) counts.set(id, (counts.get(id) ?? 0) + 1)
    const loads = new Map(this.keepers.loads().map((keeper) => [keeper.id, keeper.load]))
    return this.keepers.list().map((keeper) => ({
      id: keeper.id,
      url: keeper.url,
      alive: keeper.alive,
      lastHeartbeat: keeper.lastHeartbeat === null ? null : new Date(keeper.lastHeartbeat).toISOString(),
      files: counts.get(keeper.id) ?? 0,
      storedBytes: keeper.storedBytes,
      freeBytes: keeper.freeBytes,
      activeTransfers: loads.get(keeper.id) ?? 0,
    }))
  }

  // ---- uploads --------------------------------------------------------------------------------

  /**
   * Step 1 of an upload: check the name, pick the least-loaded alive keeper, hand out a ticket
   * (with a `write` grant for that keeper, for this upload id, name, size and sha256).
   */
  async beginUpload(request: UploadRequest): Promise<UploadTicket> {
    assertValidName(request.name)
    this.#assertFree(request.name)
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
    this.#tickets.set(uploadId, {...request, keeperId: target.id, createdAt: Date.now()})
    this.keepers.assigned(target.id)
    const grant = await this.#grant('write', {fileId: uploadId, name: request.name, size: request.size, sha256: request.sha256}, target.id)
    return {uploadId, keeper: {id: target.id, url: this.keepers.get(target.id)!.url}, ...(grant ? {grant} : {})}
  }

  /**
   * Step 2, from the keeper that stored the bytes: record the file with its first replica. Only
   * now is the upload confirmed; the keeper passes the answer on to the client.
   */
  commitUpload(uploadId: string, request: CommitRequest, member?: VerifiedMember): FileInfo {
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

    if (ticket.sha256 !== request.sha256) {
      throw new DfsError('DFS_ERR_CHECKSUM_MISMATCH', `the keeper stored sha256 ${request.sha256} but ${ticket.sha256} was announced`)
    }

    this.#tickets.delete(uploadId)
    this.#assertFree(ticket.name)
    const file: FileRow = {fileId: uploadId, name: ticket.name, size: ticket.size, sha256: ticket.sha256, createdAt: Date.now()}
    this.table.insertFile(file, request.keeperId)
    this.replicator.trigger()
    return this.fileInfo(file)
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
    return this.fileInfo(file)
  }

  /** A keeper dropped a corrupt replica: stop counting it, and let the replicator copy a good one. */
  reportCorrupt(name: string, report: CorruptReport, member?: VerifiedMember): CorruptAnswer {
    this.#bindings.requireKeeper(member, report.keeperId)
    const file = this.#file(name)
    if (file.fileId !== report.fileId) return {dropped: false}
    // Only a holder's word drops a replica (a report sent again after its answer was lost finds none).
    if (member && !this.table.holdersOf(file.fileId)?.holders.has(report.keeperId)) return {dropped: false}
    this.table.markCorrupt(file.fileId, report.keeperId)
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

  fsck(): FsckReport {
    const keepers = this.keepers.list()
    const corrupt = this.table.corruptCounts()
    const target = this.options.replicas
    const files: FsckFile[] = this.table.files().map((file) => {
      const holders = this.table.holdersOf(file.fileId)?.holders ?? new Set<string>()
      const alive = this.keepers.countAlive(holders)
      const counts = {alive, dead: holders.size - alive}
      const health: FileHealth =
        counts.alive === 0 ? 'missing' : counts.alive < target ? 'under-replicated' : counts.alive > target ? 'over-replicated' : 'healthy'
      return {name: file.name, fileId: file.fileId, size: file.size, alive: counts.alive, target, dead: counts.dead, corrupt: corrupt.get(file.fileId) ?? 0, health}
    })
    const count = (health: FileHealth) => files.filter((file) => file.health === health).length
    const summary = {
      files: files.length,
      healthy: count('healthy'),
      underReplicated: count('under-replicated'),
      overReplicated: count('over-replicated'),
      missing: count('missing'),
      corrupt: files.reduce((sum, file) => sum + file.corrupt, 0),
      aliveKeepers: keepers.filter((keeper) => keeper.alive).length,
      keepers: keepers.length,
    }
    const status = summary.missing > 0 ? 'missing' : summary.underReplicated > 0 ? 'under-replicated' : 'healthy'
    return {status, files, summary}
  }

  // ---- files ----------------------------------------------------------------------------------

  #file(name: string): FileRow {
    assertValidName(name)
    const file = this.table.fileByName(name)
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
  async #grant(op: GrantOp, file: {fileId: string; name: string; size: number; sha256: string}, keeperId: string, ttlSeconds?: number): Promise<string | undefined> {
    const key = this.options.clusterKey
    if (!key) return undefined
    return mintGrant(key, {op, fileId: file.fileId, name: file.name, size: file.size, sha256: file.sha256, keeperId}, {ttlSeconds})
  }

  fileInfo(file: FileRow): FileInfo {
    const replicas = this.table.replicasOf(file.fileId).map((replica) => {
      const keeper = this.keepers.get(replica.keeperId)
      return {keeper: replica.keeperId, url: keeper?.url ?? '', alive: keeper?.alive ?? false}
    })
    replicas.sort((a, b) => Number(b.alive) - Number(a.alive) || a.keeper.localeCompare(b.keeper))
    return {...describeFile(file), target: this.options.replicas, replicas}
  }

  list(): FileSummary[] {
    return this.table.files().map((file) => ({
      ...describeFile(file),
      replicas: this.keepers.countAlive(this.table.holdersOf(file.fileId)?.holders ?? []),
      target: this.options.replicas,
    }))
  }

  /** Forgets the file at once; every keeper holding a replica deletes it (now, or when it is back). */
  remove(name: string): RemovedFile {
    const file = this.#file(name)
    for (const replica of this.table.deleteFile(file)) {
      if (this.keepers.get(replica.keeperId)?.alive) void this.replicator.deleteReplica(replica.keeperId, {fileId: file.fileId, name: file.name})
    }

    return {name: file.name, fileId: file.fileId}
  }
}

function describeFile(file: FileRow): Omit<FileSummary, 'replicas' | 'target'> {
  return {name: file.name, fileId: file.fileId, size: file.size, sha256: file.sha256, createdAt: new Date(file.createdAt).toISOString()}
}

function noTarget(keepers: Array<{alive: boolean; freeBytes: number; id: string}>, size: number, exclude: ReadonlySet<string>): DfsError {
  const alive = keepers.filter((keeper) => keeper.alive && !exclude.has(keeper.id))
  if (alive.length === 0) {
    const tried = exclude.size > 0 ? ` (besides the ${exclude.size} already tried)` : ''
    return new DfsError('DFS_ERR_NO_KEEPERS', `no alive keepers to store the file${tried}`)
  }

  return new DfsError('DFS_ERR_INSUFFICIENT_STORAGE', `no alive keeper has ${size} bytes free`)
}
