import {createHash, randomBytes} from 'node:crypto'
import {createReadStream, createWriteStream} from 'node:fs'
import {readFile, readdir, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {basename, join, posix, relative, resolve, sep} from 'node:path'
import {Transform, pipeline as connect, type Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {setTimeout as sleep} from 'node:timers/promises'

import {CHUNK_SIZE} from '../../lib/durable-file.js'
import type {Outcome} from '../../lib/base-command.js'
import {CallBatcher} from '../../lib/call-batcher.js'
import {DfsError, asDfsError, catalogueError, type ErrorCode} from '../../lib/errors.js'
import {showingGrant} from '../../lib/grants.js'
import {HashingStream} from '../../lib/hashing.js'
import {assertValidName} from '../../lib/names.js'
import {Peer} from '../../lib/peer-client.js'
import {removeOnInterrupt} from '../../lib/remove-on-interrupt.js'
import {Slots} from '../../lib/slots.js'
import type {OnProgress} from '../../lib/transfer-progress.js'
import {
  MAX_EXCLUDE,
  MAX_UPLOAD_BATCH,
  PIPELINE_HEADER,
  SHA256_HEADER,
  SIZE_HEADER,
  keeperRoutes,
  masterRoutes,
  type FileInfo,
  type StoredAnswer,
  type UploadRequest,
  type UploadTicket,
} from '../../lib/protocol.js'
import {lookupFiles} from './admin.js'

export interface PutItem {
  /** Local path of the file to upload. */
  path: string
  /** Name to store it under; the file's base name by default. */
  name?: string
}

export interface PutResult {
  name: string
  fileId: string
  size: number
  sha256: string
  keeper: string
  /** Durable replicas when put returned: 1, or more with --wait. */
  replicas: number
}

export interface PutOptions {
  /** `put --force`: replace a file that has the name (a new generation), instead of failing. */
  replace?: boolean
  /** Uploads under way at once when several files are given. */
  concurrency?: number
  /** Succeed only once this many replicas are durable and recorded ('all': the master's target). */
  wait?: number | 'all'
  waitTimeoutMs?: number
  /** Told how far each file's hashing and sending is. */
  onProgress?: OnProgress
}

export type PutOutcome = Outcome<PutResult> & {path: string}

/**
 * Uploads several files concurrently; each succeeds or fails on its own. At most `concurrency`
 * files are sent to keepers at once, but small files (up to AHEAD_BYTES) are read, ticketed and
 * confirmed around their sending by up to AHEAD_FACTOR times as many workers, so that the master
 * gets their tickets and confirmations in batches rather than one request per file.
 */
export async function putFiles(master: Peer, items: PutItem[], options: PutOptions = {}): Promise<PutOutcome[]> {
  const outcomes: PutOutcome[] = new Array(items.length)
  const batches = masterBatches(master)
  const concurrency = options.concurrency ?? 8
  const sending = new Slots(concurrency)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const index = next++
      const item = items[index]!
      try {
        const size = await stat(item.path).then((info) => info.size, () => undefined)
        // A larger file holds its slot from its reading on: no more than `concurrency` of them are in memory.
        const small = size !== undefined && size <= AHEAD_BYTES
        const pipeline = options.wait !== undefined && options.wait !== 1
        const put = () => putFile(master, item, {replace: options.replace, onProgress: options.onProgress, batches, pipeline, ...(small ? {sending} : {})})
        const result = small ? await put() : await sending.run(put)
        if (options.wait !== undefined && options.wait !== 1) {
          result.replicas = await waitForReplicas(master, result.name, options.wait, options.waitTimeoutMs ?? 60_000)
        }

        outcomes[index] = {ok: true, path: item.path, result}
      } catch (error) {
        outcomes[index] = {ok: false, path: item.path, error: asDfsError(error)}
      }
    }
  }

  await Promise.all(Array.from({length: Math.min(concurrency * AHEAD_FACTOR, items.length)}, worker))
  return outcomes
}

/** Files up to this size are read, ticketed and confirmed ahead of and after their sending (putFiles). */
const AHEAD_BYTES = 1024 * 1024
/** Workers of putFiles per upload sent at once. */
const AHEAD_FACTOR = 8

/**
 * Stores what `input` (stdin) yields under `name`: its size is not known before its end, and the
 * master and keeper want the size up front, so it is spooled to a temp file first (memory stays
 * flat) and then uploaded as a file is. The spool is removed in any case, Ctrl-C included.
 */
export async function putStream(master: Peer, input: Readable, name: string, options: PutOptions = {}): Promise<PutOutcome> {
  assertValidName(name)
  const spool = join(tmpdir(), `.dfs-stdin.${randomBytes(8).toString('hex')}`)
  const release = removeOnInterrupt(spool)
  try {
    try {
      await pipeline(input, createWriteStream(spool, {flags: 'wx', highWaterMark: CHUNK_SIZE}))
    } catch (error) {
      throw new DfsError('DFS_ERR_LOCAL_FILE', `cannot spool stdin to ${spool}: ${(error as Error).message}`, {cause: error})
    }

    const [outcome] = await putFiles(master, [{path: spool, name}], options)
    return {...outcome!, path: '-'}
  } finally {
    await rm(spool, {force: true}).catch(() => {})
    release()
  }
}

/**
 * Uploads one file by the protocol: ask the master for a keeper, stream the file to it, and
 * succeed only when the keeper says the master recorded it. A keeper that cannot be reached or
 * drops the upload is excluded and the upload starts again on another one, once per keeper.
 */
export async function putFile(
  master: Peer,
  item: PutItem,
  options: {
    replace?: boolean
    onProgress?: OnProgress
    batches?: MasterBatches
    /** Taken for the sending to a keeper alone. */
    sending?: Slots
    /** Ask for a write pipeline (a large file's other replicas written as its bytes pass): when the put waits for them anyway. */
    pipeline?: boolean
  } = {},
): Promise<PutResult> {
  const {onProgress} = options
  const batches = options.batches ?? masterBatches(master)
  const name = item.name ?? basename(item.path)
  assertValidName(name)
  const local = await describeLocalFile(item.path, onProgress && ((bytes, total) => onProgress({file: name, phase: 'hashing', bytes, total})))
  const {size, data} = local
  // A large file is hashed while it is sent (one pass): its sha256 is known once an attempt has read it whole.
  let sha256 = local.sha256
  const exclude: string[] = []
  for (;;) {
    let ticket: UploadTicket
    try {
      // A one-pass upload whose put waits for more than one replica asks for a write pipeline: its
      // other replicas are written as its bytes pass, at the pace of the slowest keeper of the chain.
      const pipeline = !data && options.pipeline === true
      ticket = await batches.tickets.call({name, size, ...(data ? {sha256} : {}), ...(pipeline ? {pipeline: true} : {}), exclude: [...exclude], ...(options.replace ? {replace: true} : {})})
    } catch (error) {
      // An earlier attempt whose answer was lost may have been recorded after all: the same bytes
      // under the same name are this upload's success, not a conflict.
      const same = exclude.length > 0 && sha256 !== undefined && error instanceof DfsError && error.code === 'DFS_ERR_EXISTS' && (await sameFile(master, name, size, sha256))
      if (same) return same
      throw error
    }

    try {
      if (data) return await sendToKeeper(master, batches, data, name, size, sha256!, ticket, onProgress, options.sending)
      const sent = await sendInOnePass(master, item.path, name, size, ticket, onProgress)
      sha256 = sent.sha256
      return await confirmedByMaster(batches, name, size, sent.sha256, ticket, sent.stored)
    } catch (error) {
      if (error instanceof OnePassError) {
        sha256 = error.sha256 ?? sha256
        error = error.cause
      }

      if (!(error instanceof DfsError && RETRY_ELSEWHERE.has(error.code)) || exclude.includes(ticket.keeper.id) || exclude.length >= MAX_EXCLUDE) throw error
      exclude.push(ticket.keeper.id)
    }
  }
}

async function sameFile(master: Peer, name: string, size: number, sha256: string): Promise<PutResult | undefined> {
  const info = await master.call(masterRoutes.stat, {params: {name}})
  if (info.size !== size || info.sha256 !== sha256) return undefined
  const alive = info.replicas.filter((replica) => replica.alive)
  return {name, fileId: info.fileId, size, sha256, keeper: alive[0]?.keeper ?? info.replicas[0]?.keeper ?? '', replicas: alive.length}
}

// Failures of one keeper (or of its talk with the master) that another keeper may not have. This is
// failover to another keeper, not a retry of the same request (that is the peer's RetryPolicy).
const RETRY_ELSEWHERE = new Set<ErrorCode>([
  'DFS_ERR_KEEPER_UNREACHABLE',
  'DFS_ERR_BAD_RESPONSE',
  'DFS_ERR_UNKNOWN_UPLOAD',
  'DFS_ERR_MASTER_UNREACHABLE',
  'DFS_ERR_INSUFFICIENT_STORAGE',
  'DFS_ERR_SHUTTING_DOWN',
])

/**
 * Waits until a stored file has `replicas` durable, recorded replicas (`put --wait`), so that a
 * confirmed file does not live on one disk only. Fails with a clear error after `timeoutMs`.
 */
export async function waitForReplicas(master: Peer, name: string, replicas: number | 'all', timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const info = await master.call(masterRoutes.stat, {params: {name}})
    const wanted = replicas === 'all' ? info.target : replicas
    // The master stops copying at its target: more would be waited for until the deadline, in vain.
    if (wanted > info.target) throw new DfsError('DFS_ERR_BAD_REQUEST', `"${name}" is stored, but --wait ${replicas} is above the master's target of ${info.target} replicas, which it never copies beyond`)
    const alive = info.replicas.filter((replica) => replica.alive).length
    if (alive >= wanted) return alive
    if (Date.now() > deadline) {
      throw new DfsError('DFS_ERR_NO_KEEPERS', `"${name}" is stored but has ${alive} of the ${wanted} replicas waited for after ${Math.round(timeoutMs / 1000)} s`)
    }

    await sleep(25)
  }
}

/** Sends a file whose bytes and sha256 are known (read into memory) with the sha256 up front, in one request. */
async function sendToKeeper(master: Peer, batches: MasterBatches, data: Buffer, name: string, size: number, sha256: string, ticket: UploadTicket, onProgress?: OnProgress, sending?: Slots): Promise<PutResult> {
  const keeper = new Peer({role: 'keeper', baseUrl: ticket.keeper.url, agent: master.agent, credentials: showingGrant(ticket.grant)})
  const send = async () => {
    onProgress?.({file: name, phase: 'sending', bytes: 0, total: size})
    return keeper.call(keeperRoutes.upload, {
      params: {name},
      query: {upload: ticket.uploadId},
      headers: {'content-type': 'application/octet-stream', 'content-length': String(size), [SIZE_HEADER]: String(size), [SHA256_HEADER]: sha256},
      body: data,
    })
  }
  const stored = await (sending ? sending.run(send) : send())
  onProgress?.({file: name, phase: 'sending', bytes: size, total: size})
  return confirmedByMaster(batches, name, size, sha256, ticket, stored)
}

/** A failure of a one-pass attempt, with the sha256 the client computed if it read the file whole. */
class OnePassError extends Error {
  constructor(
    override readonly cause: unknown,
    readonly sha256: string | undefined,
  ) {
    super((cause as Error).message)
  }
}

/**
 * One-pass upload of a large file: its bytes are hashed as they are read and sent, and the keeper
 * holds them (fsynced, not a file yet) until the client seals them with the sha256 it computed. The
 * seal goes to the master first (the ticket takes the client's word, and the keeper's commit must
 * match it), then to the keeper, which stores and commits only if its own digest is the same.
 */
async function sendInOnePass(master: Peer, path: string, name: string, size: number, ticket: UploadTicket, onProgress?: OnProgress): Promise<{sha256: string; stored: StoredAnswer}> {
  const keeperAt = (grant: string | undefined) => new Peer({role: 'keeper', baseUrl: ticket.keeper.url, agent: master.agent, credentials: showingGrant(grant)})
  const sent = (bytes: number) => onProgress?.({file: name, phase: 'sending', bytes, total: size})
  sent(0)
  const hashing = new HashingStream()
  const body = counted(hashing, onProgress && sent)
  // `end`: a file that grew since its size was taken sends the announced bytes and no more.
  const file = createReadStream(path, {highWaterMark: CHUNK_SIZE, end: size - 1})
  // A failure spreads through the whole chain, so the stream that failed first tells whose it is: a
  // keeper that went away destroys the body first (and the failover tries another keeper), a
  // file that cannot be read fails the file stream first (and no keeper can help).
  let bodyFailed = false
  let readFailure: unknown
  body.once('error', () => {
    bodyFailed = true
  })
  body.once('close', () => {
    if (!body.readableEnded) bodyFailed = true
  })
  file.once('error', (error) => {
    if (!bodyFailed) readFailure = error
  })
  connect(file, hashing, () => {})
  let sha256: string | undefined
  let held = false
  try {
    try {
      await keeperAt(ticket.grant).call(keeperRoutes.holdUpload, {
        params: {id: ticket.uploadId},
        query: {name},
        headers: {
          'content-type': 'application/octet-stream',
          'content-length': String(size),
          [SIZE_HEADER]: String(size),
          ...(ticket.pipeline ? {[PIPELINE_HEADER]: JSON.stringify(ticket.pipeline)} : {}),
        },
        body,
      })
      held = true
    } catch (error) {
      if (hashing.readableEnded && hashing.bytes !== size) throw new DfsError('DFS_ERR_LOCAL_FILE', `${path} changed while it was read`, {cause: error})
      if (readFailure !== undefined) throw localFileError(path, readFailure)
      throw error
    }

    if (hashing.bytes !== size) throw new DfsError('DFS_ERR_LOCAL_FILE', `${path} changed while it was read`)
    sha256 = hashing.digest
    sent(size)
    const seal = await master.call(masterRoutes.sealUpload, {params: {id: ticket.uploadId}, body: {sha256}})
    // The first keeper seals the pipeline after it, with the master's grant for each.
    const stored = await keeperAt(seal.grant).call(keeperRoutes.sealUpload, {params: {id: ticket.uploadId}, body: {sha256, ...(seal.pipeline ? {pipeline: seal.pipeline} : {})}})
    return {sha256, stored}
  } catch (error) {
    // Held bytes whose seal failed (a master restarted meanwhile, a keeper that refused): the keeper
    // drops them now rather than when their grant expires; one that is gone drops them itself.
    if (held) await keeperAt(ticket.grant).call(keeperRoutes.dropUpload, {params: {id: ticket.uploadId}}).catch(() => {})
    throw new OnePassError(error, sha256)
  }
}

/**
 * The keeper's word is not enough (a keeper that lies, or is not what the ticket named): the file
 * is stored once the master has recorded this very upload, with these bytes.
 */
async function confirmedByMaster(batches: MasterBatches, name: string, size: number, sha256: string, ticket: UploadTicket, stored: StoredAnswer): Promise<PutResult> {
  const recorded = await batches.recorded.call(name)
  if (!recorded || recorded.fileId !== ticket.uploadId || recorded.size !== size || recorded.sha256 !== sha256 || stored.fileId !== ticket.uploadId) {
    throw new DfsError('DFS_ERR_INTEGRITY', `keeper ${ticket.keeper.id} answered that "${name}" was stored, but the master has no record of this upload`)
  }

  return {name, fileId: recorded.fileId, size, sha256, keeper: ticket.keeper.id, replicas: recorded.replicas.filter((replica) => replica.alive).length}
}

/**
 * The master's batched routes, for the uploads of one put: the tickets asked for, and the
 * confirmations of uploads that finished, while one request is under way go together in the next
 * (POST /uploads/batch, POST /lookup), not one request per file.
 */
interface MasterBatches {
  tickets: CallBatcher<UploadRequest, UploadTicket>
  /** The file the master recorded under a name; undefined for none. */
  recorded: CallBatcher<string, FileInfo | undefined>
}

function masterBatches(master: Peer): MasterBatches {
  return {
    tickets: new CallBatcher<UploadRequest, UploadTicket>(
      async (uploads) =>
        (await master.call(masterRoutes.beginUploads, {body: {uploads}})).tickets.map((entry) =>
          'error' in entry ? (catalogueError(entry) ?? new DfsError('DFS_ERR_BAD_RESPONSE', `the master refused a ticket with ${entry.error}, which is no dfs error: ${entry.message}`)) : entry,
        ),
      {maxItems: MAX_UPLOAD_BATCH, maxInFlight: 1},
    ),
    recorded: new CallBatcher<string, FileInfo | undefined>(
      async (names) => (await lookupFiles(master, names)).map((entry) => (entry instanceof DfsError && entry.code === 'DFS_ERR_NOT_FOUND' ? undefined : entry)),
      {maxItems: CONFIRM_CHUNK, maxInFlight: 1},
    ),
  }
}

/** Names confirmed per look-up, as `get` looks them up. */
const CONFIRM_CHUNK = 250

/**
 * What to upload for the paths given: a file as itself, a directory (with `recursive`) as every
 * regular file below it, named `DIRNAME/relative/path` (symbolic links and special files are left
 * out). `prefix` replaces DIRNAME, and goes before a plain file's name too ("" for none).
 */
export async function itemsToPut(paths: string[], options: {recursive?: boolean; prefix?: string} = {}): Promise<PutItem[]> {
  const under = (folder: string | undefined, name: string) => (folder ? posix.join(folder.replace(/\/+$/, ''), name) : name)
  const items: PutItem[] = []
  for (const path of paths) {
    const info = await stat(path).catch(() => undefined)
    if (!options.recursive || !info?.isDirectory()) {
      items.push(options.prefix === undefined ? {path} : {path, name: under(options.prefix, basename(path))})
      continue
    }

    const root = resolve(path)
    const entries = await readdir(root, {recursive: true, withFileTypes: true}).catch((error: unknown) => {
      throw localFileError(path, error)
    })
    const files = entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name))
    if (files.length === 0) throw new DfsError('DFS_ERR_LOCAL_FILE', `${path} holds no regular file to upload`)
    const folder = options.prefix ?? basename(root)
    for (const file of files.sort()) items.push({path: file, name: under(folder, relative(root, file).split(sep).join('/'))})
  }

  return items
}

/** `stream`, telling `sent` how many of its bytes have passed; `stream` itself without `sent`. */
function counted(stream: Readable, sent: ((bytes: number) => void) | undefined): Readable {
  if (!sent) return stream
  let bytes = 0
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length
      sent(bytes)
      done(null, chunk)
    },
  })
  // A read error fails the upload through the counter, and an upload given up closes the file.
  connect(stream, counter, () => {})
  return counter
}

/** Files up to this size are read into memory once, hashed, and sent from that buffer. */
export const SMALL_FILE = 8 * 1024 * 1024

/**
 * Size of a local file; a clear error if it is not a readable file. A file of at most SMALL_FILE
 * bytes is read once and its bytes and sha256 are returned too (`data`), so that the upload does
 * not read it again; a larger one is hashed while the upload streams it (sendInOnePass), never held.
 */
export async function describeLocalFile(path: string, hashed?: (bytes: number, total: number) => void): Promise<{size: number; sha256?: string; data?: Buffer}> {
  let info
  try {
    info = await stat(path)
  } catch (error) {
    throw localFileError(path, error)
  }

  if (info.isDirectory()) throw new DfsError('DFS_ERR_LOCAL_FILE', `${path} is a directory (put --recursive stores a folder)`)
  if (!info.isFile()) throw new DfsError('DFS_ERR_LOCAL_FILE', `${path} is not a regular file`)
  if (info.size > SMALL_FILE) return {size: info.size}
  hashed?.(0, info.size)
  let data
  try {
    data = await readFile(path)
  } catch (error) {
    throw localFileError(path, error)
  }

  if (data.length !== info.size) throw new DfsError('DFS_ERR_LOCAL_FILE', `${path} changed while it was read`)
  hashed?.(data.length, info.size)
  return {size: data.length, sha256: createHash('sha256').update(data).digest('hex'), data}
}

function localFileError(path: string, error: unknown): DfsError {
  const code = (error as {code?: string}).code
  const reason = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : String((error as Error).message)
  return new DfsError('DFS_ERR_LOCAL_FILE', `cannot read ${path}: ${reason}`, {cause: error})
}
