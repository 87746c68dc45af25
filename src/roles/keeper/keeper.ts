import {randomBytes} from 'node:crypto'
import {readFile, rm, writeFile} from 'node:fs/promises'
import type {IncomingMessage} from 'node:http'
import {join} from 'node:path'
import {Readable, type Transform} from 'node:stream'

import {Registry} from 'prom-client'

import type {ClusterKey} from '../../lib/cluster-key.js'
import {DEFAULTS} from '../../lib/config.js'
import {asStorageError, writeFileDurably} from '../../lib/durable-file.js'
import {CallBatcher} from '../../lib/call-batcher.js'
import {asDfsError, catalogueError, DfsError} from '../../lib/errors.js'
import {FrameReader} from '../../lib/frame-reader.js'
import {GRANT_TTL_SECONDS, showingGrant} from '../../lib/grants.js'
import {secondsSince} from '../../lib/metrics.js'
import {assertValidName, nameProblem} from '../../lib/names.js'
import {Peer, timedOut} from '../../lib/peer-client.js'
import {Slots} from '../../lib/slots.js'
import {
  MAX_UPLOAD_BATCH,
  keeperRoutes,
  masterRoutes,
  MAX_BATCH_COPIES,
  MAX_BATCH_READ_SIZE,
  type BatchedCommit,
  type CommitDone,
  type DeleteCommand,
  type RenameCommand,
  type InventoryItem,
  type KeeperStats,
  type PipelineKeeper,
  type PipelineSeal,
  type ReplicateRequest,
  type VerifyResult,
} from '../../lib/protocol.js'
import {RetryPolicy} from '../../lib/retry-policy.js'
import {FileStore} from './file-store.js'
import {mayBeMedia, probeMedia} from './media-probe.js'
import {KeeperMetrics} from './metrics.js'
import {dropWhenSilent} from './silent-sender.js'
import {PipelineForward, type HeldCopy} from './write-pipeline.js'

interface HeldUpload {
  /** Removes the bytes if they are never sealed. */
  expiry: NodeJS.Timeout
  start: number
  /** Forwarded by the keeper before this one in a write pipeline: sealed as a copy the master expects, not committed. */
  copy: boolean
  /** The keepers this one forwarded to, and which of them hold the bytes whole. */
  downstream?: {next: PipelineKeeper; rest: PipelineKeeper[]; copies: HeldCopy[]}
}

/** How many of a pipeline's copies, from the first, hold bytes of this sha256. */
function firstMismatch(copies: HeldCopy[], sha256: string): number {
  const index = copies.findIndex((copy) => copy.sha256 !== sha256)
  return index === -1 ? copies.length : index
}

/** A held one-pass upload is removed this long after its bytes arrived unless sealed: the life of its write grant. */
const HELD_UPLOAD_TTL_MS = GRANT_TTL_SECONDS.write * 1000

// Copies pulled into this keeper at once, over every order; more only queue on its disk.
const PULLS_AT_ONCE = 8
// Small copies from one source go in batch reads (POST /files/read) of up to this many files,
// this many batch reads at once over every order; each file of a batch is written in one of the
// PULLS_AT_ONCE slots, so the disk sees no more at once than with one GET per copy.
const COPIES_PER_BATCH_READ = 64
const BATCH_READS_AT_ONCE = 4
// The fewest small copies from one source that go in a batch read; fewer are one GET each.
const BATCH_READ_MIN_COPIES = 8

/**
 * Registration is tried again until the master answers, and also while the master says another
 * process still holds this keeper's id: the one this process replaces, until the master sees it dead.
 */
const UNTIL_REGISTERED = new RetryPolicy({
  ...RetryPolicy.untilAnswered.options,
  retryable: (error) => RetryPolicy.untilAnswered.options.retryable(error) || (error instanceof DfsError && error.code === 'DFS_ERR_KEEPER_IN_USE'),
})

/** The file a copy order names, as this keeper will hold it. */
function itemOf(order: ReplicateRequest): InventoryItem {
  return {fileId: order.fileId, name: order.name, size: order.size, sha256: order.sha256, ...(order.createdAt === undefined ? {} : {createdAt: order.createdAt})}
}

/** A copy a batch read can bring (a small file of a valid name); others are GETs. */
function batchable(order: ReplicateRequest): boolean {
  return order.size <= MAX_BATCH_READ_SIZE && nameProblem(order.name) === undefined
}

export interface KeeperOptions {
  master: Peer
  /** The cluster key: with it, the master's orders must prove they come from the master (server.ts checks them), and reads and uploads need the master's grants. */
  clusterKey?: ClusterKey
  dataDir: string
  /** Its failure domain; the master's default when absent. */
  zone?: string
  heartbeatIntervalMs: number
  /** How long an upload (a client's, or down a write pipeline) or a copy between keepers may go without a byte before it is cut off (--stall-timeout). */
  stallTimeoutMs?: number
  log: (message: string) => void
  /** Where its metrics go (one registry per keeper); a registry of its own when absent. */
  registry?: Registry
  /** Serve /metrics without a client token even with a cluster key (--metrics-public). */
  metricsPublic?: boolean
}

/** A data keeper's state and duties, apart from HTTP: its identity, its store, its talks with the master. */
export class Keeper {
  id = ''
  url = ''
  #activeTransfers = 0
  #heartbeatTimer: NodeJS.Timeout | undefined
  readonly #stopping = new AbortController()
  #lastHeartbeatError: string | undefined
  /** Whether the last registration or heartbeat reached the master (for GET /ready). */
  #inTouch = false
  readonly #undecided = new Map<string, InventoryItem>()
  /** Copies made on the master's order whose report found no master, with the order's grant: reported with the next heartbeats. */
  readonly #unreported = new Map<string, {file: InventoryItem; grant?: string}>()
  /** Delete orders carried out and not yet reported to the master. */
  #deleted = new Set<string>()
  /** Rename orders carried out and not yet acknowledged to the master, by file id. */
  #renamed = new Map<string, string>()
  /** Held one-pass uploads: when each is removed if never sealed, and its place in a write pipeline. */
  readonly #held = new Map<string, HeldUpload>()
  /** Corrupt replicas dropped whose report has not reached the master yet; sent again with the heartbeats. */
  readonly #unreportedCorrupt = new Map<string, InventoryItem>()
  /** Pulls of copies, PULLS_AT_ONCE at a time over all orders: more at once only queue on the disk. */
  readonly #pulls = new Slots(PULLS_AT_ONCE)
  /** Batch reads of small copies, BATCH_READS_AT_ONCE at a time over all orders. */
  readonly #batchReads = new Slots(BATCH_READS_AT_ONCE)

  readonly metrics: KeeperMetrics
  /** How long an upload or a copy between keepers may go without a byte before it is cut off (--stall-timeout). */
  readonly #stallMs: number

  /**
   * Uploads that finish while a commit is under way go to the master together, in one request of
   * up to MAX_UPLOAD_BATCH: each is still answered only once the master recorded it (or refused it).
   */
  readonly #commits = new CallBatcher<BatchedCommit, CommitDone>(
    async (commits) => {
      const answer = await this.options.master.call(masterRoutes.commitUploads, {body: {keeperId: this.id, commits}})
      return answer.commits.map((entry, index) => {
        if (entry.uploadId !== commits[index]!.uploadId) return new DfsError('DFS_ERR_BAD_RESPONSE', `the master answered commit ${index} of a batch for upload ${entry.uploadId}, not ${commits[index]!.uploadId}`)
        return 'error' in entry ? (catalogueError(entry) ?? new DfsError('DFS_ERR_BAD_RESPONSE', `the master refused upload ${entry.uploadId} with ${entry.error}, which is no dfs error`)) : entry
      })
    },
    {maxItems: MAX_UPLOAD_BATCH, maxInFlight: 1},
  )

  private constructor(
    readonly options: KeeperOptions,
    readonly store: FileStore,
  ) {
    this.metrics = new KeeperMetrics(options.registry ?? new Registry(), this)
    this.#stallMs = options.stallTimeoutMs ?? DEFAULTS.stallTimeoutMs
  }

  static async open(options: KeeperOptions): Promise<Keeper> {
    const store = await FileStore.open(options.dataDir)
    const keeper = new Keeper(options, store)
    keeper.id = (await keeper.#readIdentity()) ?? ''
    for (const file of store.undecided()) keeper.#undecided.set(file.fileId, file)
    return keeper
  }

  get #identityPath(): string {
    return join(this.options.dataDir, 'keeper.json')
  }

  async #readIdentity(): Promise<string | undefined> {
    try {
      const {id} = JSON.parse(await readFile(this.#identityPath, 'utf8')) as {id?: unknown}
      return typeof id === 'string' && id.length > 0 ? id : undefined
    } catch {
      return undefined
    }
  }

  transferStarted(): void {
    this.#activeTransfers++
  }

  transferEnded(): void {
    this.#activeTransfers--
  }

  get activeTransfers(): number {
    return this.#activeTransfers
  }

  /**
   * Throws DFS_ERR_NOT_READY unless this keeper is registered and its last heartbeat reached the
   * master, and a file can be created in its data dir (GET /ready).
   */
  async assertReady(): Promise<void> {
    if (!this.#inTouch) {
      const why = this.#lastHeartbeatError ? `its heartbeats fail: ${this.#lastHeartbeatError}` : 'it has not registered with the master yet'
      throw new DfsError('DFS_ERR_NOT_READY', `the keeper is not in touch with the master: ${why}`)
    }

    // A real write, as an upload makes: a read-only, full or immutable dir fails it where a mode check would not (root).
    const probe = join(this.store.tmpDir, `ready-${randomBytes(6).toString('hex')}.probe`)
    try {
      await writeFile(probe, 'ready', {flag: 'wx'})
    } catch (error) {
      const why = (asStorageError(error) as Error).message
      throw new DfsError('DFS_ERR_NOT_READY', `the keeper cannot write to its data dir: ${why}`, {cause: error})
    } finally {
      await rm(probe, {force: true})
    }
  }

  async stats(): Promise<KeeperStats> {
    return {
      url: this.url,
      freeBytes: await this.store.freeBytes(),
      storedBytes: this.store.storedBytes,
      fileCount: this.store.fileCount,
      activeTransfers: this.#activeTransfers,
    }
  }

  /**
   * Registers with the master (retrying until it answers), reporting every stored file and every
   * undecided upload, and keeps the id the master confirms in the data directory so that a restart
   * keeps this keeper's identity. The master's answer settles the undecided uploads by file id.
   */
  async register(url: string): Promise<void> {
    this.url = url
    let undecided: InventoryItem[] = []
    // Each attempt reports the stats and inventory of its moment, not of the first attempt.
    const response = await UNTIL_REGISTERED.run(
      async () => {
        undecided = [...this.#undecided.values()]
        return this.options.master.call(masterRoutes.register, {
          body: {...(await this.stats()), ...(this.id ? {id: this.id} : {}), zone: this.options.zone, inventory: this.store.inventory(), ...(undecided.length > 0 ? {undecided} : {})},
        })
      },
      {
        signal: this.#stopping.signal,
        onRetry: (error, failures) => {
          if (failures % 10 === 1) this.options.log(`${(error as Error).message}; retrying`)
        },
      },
    )
    if (response.id !== this.id) {
      this.id = response.id
      await writeFileDurably(this.store.tmpDir, this.#identityPath, JSON.stringify({id: this.id}) + '\n')
    }

    this.#inTouch = true
    await this.#applyDeletes(response.deletes)
    const recorded = new Set(response.recorded ?? [])
    for (const file of undecided) if (this.#undecided.has(file.fileId)) await this.#settle(file, recorded.has(file.fileId))
  }

  /** Starts the heartbeat: every interval, the keeper's load and free space go to the master. */
  startHeartbeats(): void {
    const beat = async () => {
      try {
        const deleted = [...this.#deleted]
        const renamed = [...this.#renamed].map(([fileId, name]) => ({fileId, name}))
        const response = await this.options.master.call(
          masterRoutes.heartbeat,
          {params: {id: this.id}, body: {...(await this.stats()), ...(deleted.length > 0 ? {deleted} : {}), ...(renamed.length > 0 ? {renamed} : {})}},
          {timeout: Math.min(DEFAULTS.heartbeatRequestTimeoutMs, Math.max(1000, this.options.heartbeatIntervalMs * 2))},
        )
        for (const fileId of deleted) this.#deleted.delete(fileId)
        for (const {fileId, name} of renamed) if (this.#renamed.get(fileId) === name) this.#renamed.delete(fileId)
        this.#inTouch = true
        if (this.#lastHeartbeatError) this.options.log('heartbeats reach the master again')
        this.#lastHeartbeatError = undefined
        await this.#applyDeletes(response.deletes)
        await this.#applyRenames(response.renames ?? [])
        if (this.#undecided.size > 0) await this.#settleUndecided()
        if (this.#unreported.size > 0) await this.#reportCopiesAgain()
        for (const file of [...this.#unreportedCorrupt.values()]) await this.#reportCorrupt(file)
      } catch (error) {
        if (error instanceof DfsError && error.code === 'DFS_ERR_UNKNOWN_KEEPER') {
          // The master lost this keeper's record (a new database): register afresh with the inventory.
          await this.register(this.url).catch((error_: unknown) => this.#heartbeatFailed(error_))
        } else {
          this.#heartbeatFailed(error)
        }
      } finally {
        if (!this.#stopping.signal.aborted) this.#heartbeatTimer = setTimeout(beat, this.options.heartbeatIntervalMs)
      }
    }

    this.#heartbeatTimer = setTimeout(beat, 0)
  }

  #heartbeatFailed(error: unknown): void {
    this.#inTouch = false
    const message = error instanceof Error ? error.message : String(error)
    if (message !== this.#lastHeartbeatError) this.options.log(`heartbeat failed: ${message}`)
    this.#lastHeartbeatError = message
  }

  async #applyRenames(renames: RenameCommand[]): Promise<void> {
    for (const {fileId, name} of renames) {
      // A generation this keeper no longer holds is acknowledged too: there is nothing left to rename.
      if (await this.store.rename(fileId, name)) this.options.log(`renamed replica ${fileId} to "${name}" as the master asked`)
      this.#renamed.set(fileId, name)
    }
  }

  async #applyDeletes(deletes: DeleteCommand[]): Promise<void> {
    for (const {fileId, name} of deletes) {
      if (await this.store.remove(fileId)) this.options.log(`deleted replica of "${name}" (${fileId}) as the master asked`)
      this.#deleted.add(fileId)
    }
  }

  /**
   * Stores an upload whose size and sha256 were announced, then asks the master to record it
   * (`#commit`). A client that sends no byte for the stall timeout while the keeper waits for one
   * loses the upload (`#dropWhenSilent`).
   */
  async acceptUpload(body: IncomingMessage, item: InventoryItem): Promise<InventoryItem> {
    this.transferStarted()
    const start = performance.now()
    const watch = this.#dropWhenSilent(body)
    let result = 'failed'
    try {
      let head: Buffer | undefined
      const received = await this.store.receive(body, item, {undecided: true, firstBytes: (bytes) => (head = bytes)})
      const file = await this.#commit(received, [], head)
      result = 'ok'
      return file
    } catch (error) {
      if (watch.silent && error === watch.silent) this.options.log(`upload of "${item.name}" (${item.fileId}): ${watch.silent.message}; dropped, nothing kept`)
      throw error
    } finally {
      watch.stop()
      this.transferEnded()
      this.metrics.uploads.observe({result}, secondsSince(start))
    }
  }

  /**
   * Drops an upload's body once its sender sends no byte for the stall timeout while this keeper
   * waits for one (silent-sender.ts): the client's, or with `upstream` the keeper's before this one
   * in a write pipeline. Its bytes in tmp/ and its space reservation go with it, and its
   * connection is closed. Answers the stop of the watch and, once it fired, the error the body was
   * destroyed with (made then: an upload that never goes silent pays for no stack trace).
   *
   * An upstream keeper is given half the stall timeout more: where this keeper stopped getting
   * bytes because a stall between the two stopped taking them, the upstream keeper's own stall
   * timer starts only once the buffers between them are full, later than this keeper's last byte,
   * and its cut-off (and its reason) should come first.
   */
  #dropWhenSilent(body: IncomingMessage, upstream?: string): {silent?: DfsError; stop: () => void} {
    const watch: {silent?: DfsError; stop: () => void} = {stop: () => {}}
    const silentMs = upstream === undefined ? this.#stallMs : this.#stallMs * 1.5
    watch.stop = dropWhenSilent(body, silentMs, () => {
      const address = body.socket?.remoteAddress
      const sender = upstream === undefined ? `the client${address ? ` at ${address}` : ''}` : `keeper ${upstream}`
      watch.silent = new DfsError('DFS_ERR_REQUEST_TIMEOUT', `${sender} sent no byte for ${silentMs / 1000} s`)
      return watch.silent
    })
    return watch
  }

  /**
   * Receives a one-pass upload's bytes (no sha256 up front) and holds them, fsynced and
   * uncommitted, until the client seals them (`sealUpload`). Bytes never sealed are removed when
   * the upload's grant would have expired: a client that went away leaves nothing behind.
   */
  async holdUpload(body: IncomingMessage, upload: Omit<InventoryItem, 'sha256'>, place: {pipeline?: PipelineKeeper[]; upstream?: string} = {}): Promise<{size: number; sha256: string; pipeline?: HeldCopy[]}> {
    this.transferStarted()
    const start = performance.now()
    // Bytes whose sender goes silent are dropped: a client's, and a copy's whose keeper upstream
    // went silent, since the cut-off of a stalled downstream may never reach here
    // (silent-sender.ts); else they would wait in tmp/ until the connection ends, or a restart.
    const watch = this.#dropWhenSilent(body, place.upstream)
    const [next, ...rest] = place.pipeline ?? []
    const forward = next && new PipelineForward(body, {upload, next, rest, from: this.id, agent: this.options.master.agent, stallMs: this.#stallMs, log: this.options.log})
    try {
      const held = await this.store.hold(forward ? forward.body : body, upload)
      const downstream = next && {next, rest, copies: await forward!.held}
      const expiry = setTimeout(() => {
        this.#held.delete(upload.fileId)
        void this.store.dropHeld(upload.fileId).then((dropped) => {
          if (dropped) this.options.log(`upload of "${upload.name}" (${upload.fileId}) was never sealed: removed`)
        })
      }, HELD_UPLOAD_TTL_MS)
      expiry.unref()
      this.#held.set(upload.fileId, {expiry, start, copy: place.upstream !== undefined, downstream})
      return {...held, ...(downstream ? {pipeline: downstream.copies} : {})}
    } catch (error) {
      this.metrics.uploads.observe({result: 'failed'}, secondsSince(start))
      if (watch.silent && error === watch.silent) {
        if (place.upstream === undefined) this.options.log(`upload of "${upload.name}" (${upload.fileId}): ${watch.silent.message}; dropped, nothing kept`)
        else this.options.log(`write pipeline of "${upload.name}" (${upload.fileId}): ${watch.silent.message}; the bytes it sent are dropped, the replicator copies it later`)
      }

      // Bytes the downstream got whole although this keeper failed: nobody will seal them. (A
      // failure before the body was read leaves the downstream waiting for bytes: cut it off.)
      if (forward && next) {
        forward.cut(`this keeper failed: ${(error as Error).message}`)
        void forward.held.then(async (copies) => {
          if (copies.length > 0) await this.#dropDownstream(upload.fileId, next)
        })
      }
      throw error
    } finally {
      watch.stop()
      this.transferEnded()
    }
  }

  /**
   * Seals a held upload with the client's sha256: a file, committed to the master as any upload,
   * if it is the digest of the bytes this keeper holds; removed (DFS_ERR_CHECKSUM_MISMATCH) if not.
   */
  async sealUpload(fileId: string, sha256: string, seals: PipelineSeal[] = []): Promise<{file: InventoryItem; replicas: number}> {
    const held = this.#held.get(fileId)
    clearTimeout(held?.expiry)
    this.#held.delete(fileId)
    // An upload's time runs from its first byte, as a header-path upload's does.
    const start = held?.start ?? performance.now()
    const downstream = held?.downstream
    // The keepers after this one that hold these very bytes: a wrong digest ends the chain there.
    const holding = downstream ? downstream.copies.slice(0, firstMismatch(downstream.copies, sha256)) : []
    let result = 'failed'
    let file: InventoryItem
    try {
      // A keeper down a pipeline holds a copy the master expects from the upload's commit; the first commits the upload.
      let head: Buffer | undefined
      file = await this.store.seal(fileId, sha256, {undecided: !held?.copy, firstBytes: (bytes) => (head = bytes)})
      if (held?.copy) await this.#reportPipelinedCopy(file)
      else file = await this.#commit(file, holding.map((copy) => copy.id), head)
      result = 'ok'
    } catch (error) {
      if (downstream && downstream.copies.length > 0) void this.#dropDownstream(fileId, downstream.next)
      throw error
    } finally {
      this.metrics.uploads.observe({result}, secondsSince(start))
    }

    if (!downstream || downstream.copies.length === 0) return {file, replicas: 1}
    if (holding.length === 0) {
      this.options.log(`write pipeline of "${file.name}" (${fileId}): keeper ${downstream.next.id} holds other bytes (sha256 ${downstream.copies[0]!.sha256}); not sealed, the replicator copies it later`)
      void this.#dropDownstream(fileId, downstream.next)
      return {file, replicas: 1}
    }

    return {file, replicas: 1 + (await this.#sealDownstream(file, downstream.next, seals))}
  }

  /**
   * Seals the next keeper of the pipeline with the same sha256 (and its own grant from the
   * master's seal); it seals those after it in turn. Answers the replicas it and they made
   * durable; a failure costs only those copies (logged), never this keeper's file.
   */
  async #sealDownstream(file: InventoryItem, next: PipelineKeeper, seals: PipelineSeal[]): Promise<number> {
    const grant = seals.find((seal) => seal.id === next.id)?.grant
    const rest = seals.filter((seal) => seal.id !== next.id)
    try {
      const sealed = await this.#keeperAt(next.url, grant).call(
        keeperRoutes.sealUpload,
        {params: {id: file.fileId}, body: {sha256: file.sha256, ...(rest.length > 0 ? {pipeline: rest} : {})}},
        {timeout: this.#stallMs},
      )
      return sealed.replicas ?? 1
    } catch (error) {
      this.options.log(`write pipeline of "${file.name}" (${file.fileId}): the seal of keeper ${next.id} failed (${(error as Error).message}); the replicator copies it later`)
      return 0
    }
  }

  /** Asks the next keeper of a pipeline to drop the bytes it holds (and so on down), with its write grant; best effort, they expire anyway. */
  async #dropDownstream(fileId: string, next: PipelineKeeper): Promise<void> {
    await this.#keeperAt(next.url, next.grant)
      .call(keeperRoutes.dropUpload, {params: {id: fileId}}, {timeout: this.#stallMs})
      .catch(() => {})
  }

  /**
   * Reports a copy sealed down a write pipeline. The master believes it only because the upload's
   * commit named this keeper; a copy it does not want is removed (the replicator copies the file
   * where it does), one whose report found no master is reported again with the heartbeats.
   */
  async #reportPipelinedCopy(file: InventoryItem): Promise<void> {
    this.store.publish(file)
    try {
      await this.#reported(file, undefined)
    } catch (error) {
      if (!(error instanceof DfsError && error.code === 'DFS_ERR_MASTER_UNREACHABLE')) await this.store.remove(file.fileId)
      throw error
    }
  }

  /** Removes a held upload at its client's word (its seal failed), and what the pipeline after it holds. Returns whether one was held. */
  async dropUpload(fileId: string): Promise<boolean> {
    const held = this.#held.get(fileId)
    clearTimeout(held?.expiry)
    this.#held.delete(fileId)
    if (held?.downstream && held.downstream.copies.length > 0) await this.#dropDownstream(fileId, held.downstream.next)
    return this.store.dropHeld(fileId)
  }

  /**
   * Asks the master to record a received upload. Only the master's yes publishes the file; its no
   * (name taken meanwhile, upload unknown) removes it again and is passed on to the client. When the
   * master cannot be reached the outcome is unknown (it may have recorded the file before it went
   * away): the bytes are kept, unpublished, until the master can say which it was. The upload was
   * written undecided (`store.receive`, `store.seal`), so a process that dies before the answer
   * leaves the same question for the next one (asked at its registration); the mark goes once the
   * master said yes, before the client is answered: one rename, no fsync (FileStore.decide).
   */
  async #commit(file: InventoryItem, pipeline: string[] = [], head?: Buffer): Promise<InventoryItem> {
    // Read back from the disk once the bytes are durable: box headers, ftyp and moov only; not at
    // all for a file whose first bytes (seen as they arrived) rule out an mp4.
    const media = head && !mayBeMedia(head) ? null : await probeMedia(this.store.pathOf(file.fileId))
    try {
      await this.#commits.call({uploadId: file.fileId, keeperId: this.id, name: file.name, size: file.size, sha256: file.sha256, ...(media ? {media} : {}), ...(pipeline.length > 0 ? {pipeline} : {})})
    } catch (error) {
      // No answer, or one that cannot be read: the master may have recorded the file all the same.
      if (error instanceof DfsError && (error.code === 'DFS_ERR_MASTER_UNREACHABLE' || error.code === 'DFS_ERR_BAD_RESPONSE')) {
        this.#undecided.set(file.fileId, file)
      } else {
        await this.store.remove(file.fileId)
      }

      throw error
    }

    this.store.publish(file)
    await this.#decide(file)
    return file
  }

  /** Drops a published upload's undecided mark; never fails: a failure only means the next start asks the master again. */
  async #decide(file: InventoryItem): Promise<void> {
    await this.store.decide(file.fileId).catch((error: unknown) => {
      this.options.log(`upload of "${file.name}" (${file.fileId}) is recorded, but its undecided mark could not be dropped (${(error as Error).message}); the next start asks the master again`)
    })
  }

  /** Settles uploads whose commit had no answer: published if the master recorded them, else removed. */
  async #settleUndecided(): Promise<void> {
    for (const file of [...this.#undecided.values()]) {
      let recorded: boolean
      try {
        const info = await this.options.master.call(masterRoutes.stat, {params: {name: file.name}})
        recorded = info.fileId === file.fileId
      } catch (error) {
        if (!(error instanceof DfsError && error.code === 'DFS_ERR_NOT_FOUND')) return
        recorded = false
      }

      // Settled meanwhile by a registration's answer.
      if (!this.#undecided.has(file.fileId)) continue
      await this.#settle(file, recorded)
    }
  }

  /** Keeps (publishes) an undecided upload the master recorded, removes one it did not. */
  async #settle(file: InventoryItem, recorded: boolean): Promise<void> {
    this.#undecided.delete(file.fileId)
    if (recorded) {
      this.store.publish(file)
      void this.#decide(file)
    } else {
      await this.store.remove(file.fileId)
    }

    this.options.log(`upload of "${file.name}" (${file.fileId}) whose commit had no answer was ${recorded ? 'recorded: kept' : 'not recorded: removed'}`)
  }

  /** Pulls a copy of a file from another keeper (the master's replication order) and reports it. */
  async pullReplica(order: ReplicateRequest): Promise<InventoryItem> {
    const [result] = await this.pullReplicas([order])
    if (result instanceof Error) throw result
    return result!
  }

  /** Reports one copy (a pipelined one); one whose report found no master is reported again with the heartbeats. */
  async #reported(file: InventoryItem, grant: string | undefined): Promise<void> {
    let refused: Map<string, DfsError>
    try {
      refused = await this.#reportCopies([{file, grant}])
    } catch (error) {
      // The master may have died meanwhile: a new one would never hear of this copy.
      if (error instanceof DfsError && error.code === 'DFS_ERR_MASTER_UNREACHABLE') this.#unreported.set(file.fileId, {file, grant})
      throw error
    }

    this.#unreported.delete(file.fileId)
    const failure = refused.get(file.fileId)
    if (failure) throw failure
  }

  /**
   * Carries out a batched copy order: pulls its copies PULLS_AT_ONCE at a time (with every other
   * order's), reports those now durable to the master in one request, and answers per copy: the
   * copy, or why it failed. A copy that fails fails alone. Small copies from one source come in
   * batch reads (#pullBatch); a copy a batch did not bring whole and verified is pulled alone.
   */
  async pullReplicas(orders: ReplicateRequest[]): Promise<Array<InventoryItem | DfsError>> {
    const results: Array<InventoryItem | DfsError> = Array.from({length: orders.length})
    const pullAlone = async (index: number) => {
      results[index] = await this.#pulls.run(() => this.#pull(orders[index]!)).catch(asDfsError)
    }

    const alone: number[] = []
    const bySource = new Map<string, number[]>()
    for (const [index, order] of orders.entries()) {
      if (!batchable(order) || this.store.byId(order.fileId)) {
        alone.push(index)
        continue
      }

      const group = bySource.get(order.source)
      if (group) group.push(index)
      else bySource.set(order.source, [index])
    }

    const batches: Array<{source: string; indexes: number[]}> = []
    for (const [source, indexes] of bySource) {
      // A few small copies from a source come by GET, as before: the orders that follow a put
      // carry one or two copies per source, where a batch saved no CPU per copy (measured in
      // docs/performance.md, "Copies in batches"); a backlog (a keeper lost, a keeper added) has many.
      if (indexes.length < BATCH_READ_MIN_COPIES) alone.push(...indexes)
      else for (let first = 0; first < indexes.length; first += COPIES_PER_BATCH_READ) batches.push({source, indexes: indexes.slice(first, first + COPIES_PER_BATCH_READ)})
    }

    await Promise.all([
      ...alone.map(pullAlone),
      ...batches.map(async ({source, indexes}) => {
        const left = await this.#batchReads.run(async () =>
          this.#pullBatch(
            source,
            indexes.map((index) => orders[index]!),
            (position, file) => (results[indexes[position]!] = file),
          ),
        )
        await Promise.all(left.map(async (position) => pullAlone(indexes[position]!)))
      }),
    ])
    const stored = orders.flatMap((order, index) => {
      const file = results[index]
      return file instanceof Error ? [] : [{index, copy: {file: file!, grant: order.grant}}]
    })
    if (stored.length === 0) return results
    let refused: Map<string, DfsError>
    try {
      refused = await this.#reportCopies(stored.map(({copy}) => copy))
    } catch (error) {
      // The master may have died with the order under way: a new one would never hear of these copies.
      const failure = asDfsError(error)
      const again = failure.code === 'DFS_ERR_MASTER_UNREACHABLE' ? ': reported again with the heartbeats' : ''
      this.options.log(`the report of ${stored.length} stored ${stored.length === 1 ? 'copy' : 'copies'} failed (${failure.code}: ${failure.message})${again}`)
      for (const {index, copy} of stored) {
        if (failure.code === 'DFS_ERR_MASTER_UNREACHABLE') this.#unreported.set(copy.file.fileId, copy)
        results[index] = failure
      }

      return results
    }

    for (const {index, copy} of stored) {
      this.#unreported.delete(copy.file.fileId)
      const failure = refused.get(copy.file.fileId)
      if (failure) results[index] = failure
    }

    return results
  }

  /** One copy of an order, pulled from its source unless this keeper holds it already. */
  async #pull(order: ReplicateRequest): Promise<InventoryItem> {
    assertValidName(order.name)
    const item = itemOf(order)
    const held = this.store.byId(order.fileId)
    if (held) return held
    this.transferStarted()
    const start = performance.now()
    let result = 'failed'
    try {
      const response = await this.#keeperAt(order.source, order.grant).open(keeperRoutes.read, {params: {name: order.name}, query: {fileId: order.fileId}}, {timeout: this.#stallMs})
      let file: InventoryItem
      try {
        file = await this.store.receive(response.body, item)
      } catch (error) {
        // Refused before the body was read (no room, a copy already here): free the connection.
        // The abort that destroying an unread body raises is this keeper's own doing, not news:
        // unheard, it would be an unhandled 'error' and take the process down (the chaos run saw it).
        response.body.on('error', () => {})
        response.body.destroy()
        if (timedOut(error)) {
          throw new DfsError('DFS_ERR_KEEPER_UNREACHABLE', `the keeper at ${order.source} sent no byte of "${order.name}" for ${this.#stallMs / 1000} s`, {cause: error})
        }

        throw error
      }

      this.store.publish(file)
      result = 'ok'
      return file
    } finally {
      this.transferEnded()
      this.metrics.copies.observe({result}, secondsSince(start))
    }
  }

  /**
   * Small copies of an order from one source in one batch read (POST /files/read, each item shown
   * its order's grant). Each frame is taken off the answer once a PULLS_AT_ONCE slot is free and
   * written durably (temp file, fsync, rename) and checked against the ORDER's size and sha256,
   * while the next frame is read. Answers the positions of the copies it did not store (an error
   * frame, bytes that fail the check, a frame never read because the answer broke off): the caller
   * pulls those alone, so each fails alone exactly as a GET of it would.
   */
  async #pullBatch(source: string, orders: ReplicateRequest[], stored: (position: number, file: InventoryItem) => void): Promise<number[]> {
    const left: number[] = []
    const writes: Array<Promise<void>> = []
    let reader: FrameReader | undefined
    // The first copy whose frame is not yet off the answer.
    let next = 0
    this.transferStarted()
    try {
      const files = orders.map(({name, fileId, grant}) => ({name, fileId, ...(grant === undefined ? {} : {grant})}))
      const answer = await this.#keeperAt(source, undefined).open(keeperRoutes.readBatch, {body: {files}}, {timeout: this.#stallMs})
      reader = new FrameReader(answer.body as AsyncIterable<Buffer>, source)
      while (next < orders.length) {
        const order = orders[next]!
        const position = next
        const head = await reader.header()
        if (!head) throw new DfsError('DFS_ERR_BAD_RESPONSE', `${source} ended its batch read before "${order.name}"`)
        if (head.fileId !== order.fileId) throw new DfsError('DFS_ERR_BAD_RESPONSE', `${source} answered a batch read with ${head.fileId} in the place of ${order.fileId}`)
        next++
        if ('error' in head) {
          left.push(position)
          continue
        }

        // A copy of another size than the order's is not the file: its bytes are let go.
        if (head.size !== order.size) {
          await reader.take(head.size)
          left.push(position)
          continue
        }

        const frame = reader
        const start = performance.now()
        let frameOff!: (error: unknown) => void
        const off = new Promise<unknown>((resolve) => (frameOff = resolve))
        const write = this.#pulls.run(async () => {
          let chunks: Buffer[]
          try {
            chunks = await frame.take(order.size)
          } catch (error) {
            frameOff(error)
            throw error
          }

          frameOff(undefined)
          const file = await this.store.receive(Readable.from(chunks), itemOf(order))
          this.store.publish(file)
          return file
        })
        writes.push(
          write.then(
            (file) => {
              this.metrics.copies.observe({result: 'ok'}, secondsSince(start))
              this.metrics.batchCopies.inc({result: 'stored'})
              stored(position, file)
            },
            () => {
              left.push(position)
            },
          ),
        )
        // The frame comes off the answer before the next header is read.
        const broken = await off
        if (broken) throw broken
      }

      // Read to its end, so that the connection is kept for the next request.
      if (await reader.header()) throw new DfsError('DFS_ERR_BAD_RESPONSE', `${source} answered a batch read with more frames than asked`)
    } catch (error) {
      reader?.close()
      const failure = asDfsError(error)
      this.options.log(`a batch read of ${orders.length} copies from ${source} stopped after ${next} (${failure.code}: ${failure.message}): the rest are pulled alone`)
      for (let position = next; position < orders.length; position++) left.push(position)
    } finally {
      this.transferEnded()
    }

    await Promise.all(writes)
    if (left.length > 0) this.metrics.batchCopies.inc({result: 'alone'}, left.length)
    return left
  }

  /**
   * Tells the master this keeper holds these copies, in one request; answers those the master
   * refused, by file id. A copy of a file deleted or replaced meanwhile is garbage: removed here.
   */
  async #reportCopies(copies: Array<{file: InventoryItem; grant?: string | undefined}>): Promise<Map<string, DfsError>> {
    const answer = await this.options.master.call(masterRoutes.reportReplicas, {
      body: {keeperId: this.id, copies: copies.map(({file, grant}) => ({fileId: file.fileId, name: file.name, size: file.size, sha256: file.sha256, ...(grant ? {grant} : {})}))},
    })
    const refused = new Map<string, DfsError>()
    for (const [index, {file}] of copies.entries()) {
      const verdict = answer.copies[index]
      if (verdict?.fileId === file.fileId && verdict.counted) continue
      const failure = catalogueError(verdict) ?? new DfsError('DFS_ERR_BAD_RESPONSE', `the master's answer to the report of "${file.name}" counts nothing`)
      if (failure.code === 'DFS_ERR_NOT_FOUND' || failure.code === 'DFS_ERR_STALE_REPLICA') await this.store.remove(file.fileId)
      refused.set(file.fileId, failure)
    }

    return refused
  }

  /** Reports copies whose report found no master; the master trims any it no longer needs. */
  async #reportCopiesAgain(): Promise<void> {
    const copies: Array<{file: InventoryItem; grant?: string}> = []
    for (const copy of this.#unreported.values()) {
      // Deleted meanwhile (a delete order, found corrupt): nothing to report.
      if (this.store.byId(copy.file.fileId) === copy.file) copies.push(copy)
      else this.#unreported.delete(copy.file.fileId)
    }

    for (let first = 0; first < copies.length; first += MAX_BATCH_COPIES) {
      const batch = copies.slice(first, first + MAX_BATCH_COPIES)
      let refused: Map<string, DfsError>
      try {
        refused = await this.#reportCopies(batch)
      } catch (error) {
        if (error instanceof DfsError && error.code === 'DFS_ERR_MASTER_UNREACHABLE') return
        refused = new Map(batch.map(({file}) => [file.fileId, asDfsError(error)]))
      }

      for (const {file} of batch) {
        const failure = refused.get(file.fileId)
        const outcome = failure ? `not wanted (${failure.message}): ${this.store.byId(file.fileId) ? 'kept' : 'removed'}` : 'reported'
        this.#unreported.delete(file.fileId)
        this.options.log(`copy of "${file.name}" (${file.fileId}) whose report found no master was ${outcome}`)
      }
    }
  }


  /**
   * Re-hashes a replica (a reader saw bytes that did not match, or the scrubber's turn came; `pace`
   * throttles the read). A bad one that is still stored is dropped here and reported to the master,
   * which copies a good replica back; one deleted meanwhile is left to that delete.
   */
  async verifyReplica(file: InventoryItem, pace?: Transform): Promise<VerifyResult> {
    const result = await this.store.verify(file, pace)
    if (!result.ok && this.store.byId(file.fileId) === file) {
      await this.#dropCorrupt(file, `re-hashing read ${result.size} bytes with sha256 ${result.sha256 || '(none: file missing)'}`)
    }

    return result
  }

  /** Removes a corrupt replica from disk and tells the master, so it stops counting and serving it. */
  async #dropCorrupt(file: InventoryItem, reason: string): Promise<void> {
    this.options.log(`replica of "${file.name}" (${file.fileId}) is corrupt: ${reason}; dropping it`)
    this.metrics.corruptFound.inc()
    await this.store.remove(file.fileId)
    await this.#reportCorrupt(file)
  }

  /**
   * Tells the master a replica was dropped. Until it hears, the master counts the replica as alive
   * (heartbeats carry no inventory), so a report that fails is sent again with the next heartbeats.
   */
  async #reportCorrupt(file: InventoryItem): Promise<void> {
    // A good copy of the same generation came back meanwhile: there is nothing wrong to report.
    if (this.store.byId(file.fileId)) {
      this.#unreportedCorrupt.delete(file.fileId)
      return
    }

    try {
      await this.options.master.call(masterRoutes.reportCorrupt, {params: {name: file.name}, body: {keeperId: this.id, fileId: file.fileId}})
      this.#unreportedCorrupt.delete(file.fileId)
    } catch (error) {
      // The file is gone from the master: it counts no replica of it any more.
      if (error instanceof DfsError && error.code === 'DFS_ERR_NOT_FOUND') {
        this.#unreportedCorrupt.delete(file.fileId)
        return
      }

      if (!this.#unreportedCorrupt.has(file.fileId)) this.options.log(`could not report the corrupt replica of "${file.name}": ${(error as Error).message}; trying again with the heartbeats`)
      this.#unreportedCorrupt.set(file.fileId, file)
    }
  }

  /** Another keeper, to pull a copy from, shown the master's grant for it if the order carried one. */
  #keeperAt(url: string, grant: string | undefined): Peer {
    return new Peer({role: 'keeper', baseUrl: url, agent: this.options.master.agent, credentials: showingGrant(grant)})
  }

  stop(): void {
    for (const {expiry} of this.#held.values()) clearTimeout(expiry)
    this.#stopping.abort()
    clearTimeout(this.#heartbeatTimer)
    this.metrics.stop()
  }
}
