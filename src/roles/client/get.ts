import {createHash, randomBytes, type Hash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {link, mkdir, open, rename, rm, stat, type FileHandle} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {basename, dirname, join, posix, resolve, sep} from 'node:path'
import type {Writable} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import type {Outcome} from '../../lib/base-command.js'
import {DEFAULTS} from '../../lib/config.js'
import {CHUNK_SIZE} from '../../lib/durable-file.js'
import {DfsError, asDfsError} from '../../lib/errors.js'
import {FileHasher} from '../../lib/file-hasher.js'
import {FrameReader} from '../../lib/frame-reader.js'
import {showingGrant} from '../../lib/grants.js'
import {SyncBehind} from '../../lib/sync-behind.js'
import {Peer} from '../../lib/peer-client.js'
import {MAX_BATCH_READ_SIZE, keeperRoutes, masterRoutes, type FileInfo, type SuspectVerdict} from '../../lib/protocol.js'
import {removeOnInterrupt} from '../../lib/remove-on-interrupt.js'
import {folderPrefix} from '../../lib/name-patterns.js'
import {nameProblem, printable} from '../../lib/names.js'
import type {OnProgress} from '../../lib/transfer-progress.js'
import {listFiles, lookupFiles, statFile} from './admin.js'
import {FrameSource} from './batch-read.js'
import {RANGE_STALL_TIMEOUT_MS, RangedDownload, type SourceReport} from './ranged-download.js'

export interface GetOptions {
  /** Where to write: a file path, an existing directory, or '-' for stdout. Default: ./NAME. */
  output?: string
  rangeSize?: number
  /** Read from at most this many replicas (all alive ones by default). */
  sources?: number
  stdout?: Writable
  /** Leave a local file that exists alone: fail for it instead (checked again at the rename, atomically). */
  noClobber?: boolean
  /**
   * The folder the names are stored under (`get --recursive`): each goes to the output directory
   * at its path below that folder, its local folders made. Without it, each goes there by its base name.
   */
  under?: string
  /** Told how far each file's download is. */
  onProgress?: OnProgress
}

export interface GetResult {
  name: string
  size: number
  sha256: string
  path: string
  sources: SourceReport[]
  /** Replicas found corrupt on the way (dropped by their keepers and copied again by the master). */
  corruptReplicas: string[]
}

export type GetOutcome = Outcome<GetResult> & {name: string}

/**
 * Downloads files, a few at a time: one name to `output` (a file, a directory, or '-'), several
 * into the directory `output` (created if needed). Each name succeeds or fails on its own.
 */
export async function getFiles(master: Peer, names: string[], options: GetOptions = {}): Promise<GetOutcome[]> {
  const directory = names.length > 1 || options.under !== undefined ? resolve(options.output ?? '.') : undefined
  if (directory && options.under === undefined) {
    const byBase = new Map<string, string>()
    for (const name of names) {
      const other = byBase.get(posix.basename(name))
      if (other !== undefined && other !== name) throw new DfsError('DFS_ERR_BAD_REQUEST', `"${other}" and "${name}" would both be written to ${join(directory, posix.basename(name))}; get their folder with --recursive`)
      byBase.set(posix.basename(name), name)
    }
  }

  if (directory) await mkdir(directory, {recursive: true})
  const outcomes: GetOutcome[] = new Array(names.length)
  if (directory && names.length > 1) {
    await new ManyGets(master, names, directory, options, outcomes).run()
    return outcomes
  }

  let next = 0
  const worker = async () => {
    while (next < names.length) {
      const index = next++
      const name = names[index]!
      try {
        const path = directory ? await localPathIn(directory, name, options.under) : undefined
        outcomes[index] = {ok: true, name, result: await getFile(master, name, path ? {...options, output: path} : options, {path})}
      } catch (error) {
        outcomes[index] = {ok: false, name, error: asDfsError(error)}
      }
    }
  }

  await Promise.all(Array.from({length: Math.min(8, names.length)}, worker))
  return outcomes
}

// Names looked up per request by a get of many: a few hundred answers (with their grants) in memory.
const LOOKUP_CHUNK = 250
// The first chunks are smaller (32, 64, 128 names, then LOOKUP_CHUNK), so that the first files are
// read after a short answer: a look-up costs the master ~0.3–0.5 ms per name (grants included), and
// the first two chunks are asked for at once, so 2 × 250 names kept every download waiting ~0.2 s.
const FIRST_LOOKUP_CHUNK = 32

/** Where chunk `number` of a get's look-ups starts, and how many names it takes at most. */
function lookupChunk(number: number): {start: number; size: number} {
  let start = 0
  let size = Math.min(FIRST_LOOKUP_CHUNK, LOOKUP_CHUNK)
  for (let n = 0; n < number; n++) {
    if (size >= LOOKUP_CHUNK) return {start: start + (number - n) * LOOKUP_CHUNK, size: LOOKUP_CHUNK}
    start += size
    size = Math.min(size * 2, LOOKUP_CHUNK)
  }

  return {start, size}
}

/**
 * The look-ups of a get of many names, a chunk per request to the master (POST /lookup) instead of
 * one per name (chunks of lookupChunk), the next chunk asked for while the current one downloads.
 * Each chunk is let go once every one of its names was taken. A chunk whose request fails yields
 * nothing: each of its names is then looked up by itself, and fails or succeeds on its own.
 */
class LookAhead {
  readonly #chunks = new Map<number, {files: Promise<Array<FileInfo | DfsError> | undefined>; left: number}>()

  constructor(
    readonly master: Peer,
    readonly names: string[],
  ) {}

  /** The look-up of the name at `index`, which chunk `number` holds. */
  async take(number: number, index: number): Promise<FileInfo | DfsError | undefined> {
    const chunk = this.#chunk(number)
    this.#chunk(number + 1)
    if (--chunk.left === 0) this.#chunks.delete(number)
    return (await chunk.files)?.[index - lookupChunk(number).start]
  }

  #chunk(number: number): {files: Promise<Array<FileInfo | DfsError> | undefined>; left: number} {
    let chunk = this.#chunks.get(number)
    const {start, size} = lookupChunk(number)
    if (!chunk && start < this.names.length) {
      const names = this.names.slice(start, start + size)
      chunk = {files: lookupFiles(this.master, names).catch(() => undefined), left: names.length}
      this.#chunks.set(number, chunk)
    }

    return chunk ?? {files: Promise.resolve(undefined), left: 0}
  }
}

// Files per batch read (POST /files/read): the per-request cost on both sides (HTTP request and
// answer, routing, hooks, metrics) spread over 64 files is a few per cent of theirs; a look-up
// chunk (250 names) still makes a few requests per keeper of 3–4, which run at once; a batch that
// fails costs at most 64 single gets. The keeper takes up to MAX_BATCH_READ.
const BATCH_READ_FILES = 64
// Batch reads under way at once, and files of each being written, fsynced and renamed while its
// next frames are read (each holds one small file's bytes until written): on 2 cores a few requests
// keep the keepers and the client busy, and the fsyncs of several files overlap.
const BATCHES_IN_FLIGHT = 3
const SYNCING_PER_BATCH = 4
// Single gets under way at once: files too large for a batch, and those a batch did not deliver.
const SINGLE_GETS = 8

/** A file a batch read is to deliver, and where it goes. */
interface Wanted {
  index: number
  info: FileInfo
  path: string
  /** The read grant of the replica it is read from. */
  grant?: string
}

/** Files read together from one replica. */
interface Batch {
  keeper: string
  url: string
  files: Wanted[]
}

/** A file got by itself (getFile); `corrupt`: replicas a batch read found corrupt on the way. */
interface Single {
  index: number
  known?: FileInfo
  corrupt?: string[]
}

/**
 * A get of many names into a directory. Names are looked up a chunk at a time (LookAhead); the
 * files of a chunk that take one range and at most MAX_BATCH_READ_SIZE bytes are grouped by the
 * replica each is read from and read in batches (one request per group, its answer's frames
 * written one file each, through the very download path a single get takes: temp file, hash,
 * check against the master's size and sha256, fsync, rename). The others, and every file a batch
 * did not deliver good (an error frame, bytes that do not match, an answer that broke off), are
 * got by themselves (getFile), which tries the other replicas: a batch only ever saves requests.
 */
class ManyGets {
  readonly #singles: Single[] = []
  readonly #batches: Batch[] = []
  /** Every chunk was queued. */
  #listed = false
  #batchesRunning = 0
  #wake: () => void = () => {}
  #changed: Promise<void>

  constructor(
    readonly master: Peer,
    readonly names: string[],
    readonly directory: string,
    readonly options: GetOptions,
    readonly outcomes: GetOutcome[],
  ) {
    this.#changed = new Promise((resolve) => (this.#wake = resolve))
  }

  async run(): Promise<void> {
    await Promise.all([this.#queue(), ...Array.from({length: SINGLE_GETS}, async () => this.#singleWorker()), ...Array.from({length: BATCHES_IN_FLIGHT}, async () => this.#batchWorker())])
  }

  /** Wakes everyone waiting for a change of the queues. */
  #notify(): void {
    const wake = this.#wake
    this.#changed = new Promise((resolve) => (this.#wake = resolve))
    wake()
  }

  #fail(index: number, error: unknown): void {
    this.outcomes[index] = {ok: false, name: this.names[index]!, error: asDfsError(error)}
  }

  async #queue(): Promise<void> {
    const lookups = new LookAhead(this.master, this.names)
    const rangeSize = this.options.rangeSize ?? DEFAULTS.rangeSize
    try {
      for (let number = 0; lookupChunk(number).start < this.names.length; number++) {
        const {start, size} = lookupChunk(number)
        // One chunk queued at a time (the next one's look-up is under way meanwhile), so that a
        // get of very many names holds a few hundred answers, not all of them.
        while (this.#singles.length > 0 || this.#batches.length > 0) await this.#changed
        const batchable: Wanted[] = []
        for (let index = start; index < Math.min(start + size, this.names.length); index++) {
          const known = await lookups.take(number, index)
          if (known instanceof DfsError) {
            this.#fail(index, known)
          } else if (known && known.size <= MAX_BATCH_READ_SIZE && known.size <= rangeSize && this.options.output !== '-' && known.replicas.some((replica) => replica.alive)) {
            try {
              batchable.push({index, info: known, path: await localPathIn(this.directory, this.names[index]!, this.options.under)})
            } catch (error) {
              this.#fail(index, error)
            }
          } else {
            this.#singles.push({index, known})
          }
        }

        this.#batches.push(...batchesOf(batchable))
        this.#notify()
      }
    } finally {
      this.#listed = true
      this.#notify()
    }
  }

  async #singleWorker(): Promise<void> {
    for (;;) {
      const single = this.#singles.shift()
      if (single) {
        this.#notify()
        await this.#getOne(single)
      } else if (this.#listed && this.#batches.length === 0 && this.#batchesRunning === 0) {
        return
      } else {
        await this.#changed
      }
    }
  }

  async #batchWorker(): Promise<void> {
    for (;;) {
      const batch = this.#batches.shift()
      if (batch) {
        this.#batchesRunning++
        this.#notify()
        try {
          await this.#readBatch(batch)
        } finally {
          this.#batchesRunning--
          this.#notify()
        }
      } else if (this.#listed) {
        return
      } else {
        await this.#changed
      }
    }
  }

  async #getOne({index, known, corrupt = []}: Single): Promise<void> {
    const name = this.names[index]!
    try {
      const path = await localPathIn(this.directory, name, this.options.under)
      const result = await getFile(this.master, name, {...this.options, output: path}, {known, path})
      this.outcomes[index] = {ok: true, name, result: corrupt.length === 0 ? result : {...result, corruptReplicas: [...new Set([...corrupt, ...result.corruptReplicas])]}}
    } catch (error) {
      this.#fail(index, error)
    }
  }

  /** The file goes to the single gets; without the replicas found corrupt. */
  #fallBack(wanted: Wanted, corrupt: string[] = []): void {
    const known = corrupt.length === 0 ? wanted.info : {...wanted.info, replicas: wanted.info.replicas.filter((replica) => !corrupt.includes(replica.keeper))}
    this.#singles.push({index: wanted.index, known, corrupt})
    this.#notify()
  }

  /** A file of a batch that failed: after bytes that did not match, the master has the replica verified, as a single get does. */
  async #afterFailure(wanted: Wanted, error: unknown): Promise<void> {
    if (!(error instanceof IntegrityError)) return this.#fallBack(wanted)
    const verdicts = await Promise.all(error.sources.map(async (keeper) => reportSuspect(this.master, wanted.info, keeper)))
    this.#fallBack(
      wanted,
      verdicts.filter((verdict) => verdict.corrupt).map((verdict) => verdict.keeper),
    )
  }

  async #readBatch(batch: Batch): Promise<void> {
    const syncing = new Set<Promise<void>>()
    let reader: FrameReader | undefined
    // The first file whose frame is not yet off the answer.
    let next = 0
    try {
      const peer = new Peer({role: 'keeper', baseUrl: batch.url, agent: this.master.agent})
      const files = batch.files.map(({info, grant}) => ({name: info.name, fileId: info.fileId, ...(grant === undefined ? {} : {grant})}))
      // A keeper that sends nothing for this long has failed, as for a range: its files are got by themselves.
      const answer = await peer.open(keeperRoutes.readBatch, {body: {files}}, {timeout: RANGE_STALL_TIMEOUT_MS})
      reader = new FrameReader(answer.body as AsyncIterable<Buffer>, batch.url)
      while (next < batch.files.length) {
        const wanted = batch.files[next]!
        const head = await reader.header()
        if (!head) throw new DfsError('DFS_ERR_BAD_RESPONSE', `${batch.url} ended its batch read before "${wanted.info.name}"`)
        if (head.fileId !== wanted.info.fileId) throw new DfsError('DFS_ERR_BAD_RESPONSE', `${batch.url} answered a batch read with ${head.fileId} in the place of ${wanted.info.fileId}`)
        next++
        if ('error' in head) {
          this.#fallBack(wanted)
          continue
        }

        // A copy of another size than the master's record is not the file: its bytes are let go.
        if (head.size !== wanted.info.size) {
          await reader.take(head.size)
          this.#fallBack(wanted)
          continue
        }

        const source = new FrameSource(reader, batch.keeper, head.size, wanted.info.replicas.filter((replica) => replica.alive))
        const got = download(this.master, wanted.info, {...this.options, output: wanted.path}, new Set(), wanted.path, source)
        const done = got.then(
          (result) => {
            this.outcomes[wanted.index] = {ok: true, name: this.names[wanted.index]!, result: {...result, corruptReplicas: []}}
          },
          async (error: unknown) => this.#afterFailure(wanted, error),
        )
        syncing.add(done)
        void done.finally(() => syncing.delete(done))
        // The frame comes off the answer before the next header: taken by the download, or let go
        // here when the download failed before it read (a local file it may not replace, ...).
        await Promise.race([source.read, done])
        if (source.started) {
          const broken = await source.read
          if (broken) throw broken
        } else {
          await reader.take(head.size)
        }
        while (syncing.size >= SYNCING_PER_BATCH) await Promise.race(syncing)
      }

      // Read to its end, so that the connection is kept for the next request (and nothing follows the last frame).
      if (await reader.header()) throw new DfsError('DFS_ERR_BAD_RESPONSE', `${batch.url} answered a batch read with more frames than asked`)
    } catch {
      // The answer was refused, broke off or is not one: its files not yet taken off it are got one by one.
      for (const wanted of batch.files.slice(next)) this.#fallBack(wanted)
    } finally {
      reader?.close()
      await Promise.all(syncing)
    }
  }
}

/**
 * The batches of a chunk's small files: each file read from the alive replica with the fewest
 * files so far (ties at random), so that every keeper serves a fair share; a keeper's files cut
 * into batches of at most BATCH_READ_FILES, of even sizes, the keepers taking turns in the list.
 */
function batchesOf(files: Wanted[]): Batch[] {
  const byKeeper = new Map<string, {url: string; files: Wanted[]}>()
  for (const file of files) {
    let chosen: FileInfo['replicas'][number] | undefined
    let fewest = Number.POSITIVE_INFINITY
    for (const replica of shuffle(file.info.replicas.filter((candidate) => candidate.alive))) {
      const count = byKeeper.get(replica.keeper)?.files.length ?? 0
      if (count < fewest) [chosen, fewest] = [replica, count]
    }

    let group = byKeeper.get(chosen!.keeper)
    if (!group) byKeeper.set(chosen!.keeper, (group = {url: chosen!.url, files: []}))
    group.files.push({...file, grant: chosen!.grant})
  }

  const perKeeper = [...byKeeper].map(([keeper, {url, files}]) => {
    const size = Math.ceil(files.length / Math.ceil(files.length / BATCH_READ_FILES))
    const batches: Batch[] = []
    for (let at = 0; at < files.length; at += size) batches.push({keeper, url, files: files.slice(at, at + size)})
    return batches
  })
  const batches: Batch[] = []
  const total = perKeeper.reduce((sum, list) => sum + list.length, 0)
  for (let turn = 0; batches.length < total; turn++) {
    for (const list of perKeeper) if (turn < list.length) batches.push(list[turn]!)
  }

  return batches
}

/**
 * Downloads every file under a folder into a local directory (`get --recursive`), recreating its
 * tree: `folder` "videos" means "videos/"; the directory is the folder's last name by default.
 */
export async function getFolder(master: Peer, folder: string, options: GetOptions = {}): Promise<GetOutcome[]> {
  const under = folderPrefix(folder)
  const names = (await listFiles(master, under)).map((file) => file.name)
  if (names.length === 0) throw new DfsError('DFS_ERR_NOT_FOUND', `no files under "${under}"`)
  return getFiles(master, names, {...options, output: options.output ?? (posix.basename(under) || '.'), under})
}

/**
 * Where a file of a multi-file get goes in `directory`: at its path below `under`, or by its base
 * name. A name that would land outside the directory (only a master that lies could list one) is refused.
 */
async function localPathIn(directory: string, name: string, under: string | undefined): Promise<string> {
  const local = under === undefined ? posix.basename(name) : name.startsWith(under) ? name.slice(under.length) : ''
  const path = resolve(directory, local)
  if (nameProblem(local) !== undefined || !path.startsWith(directory + sep)) {
    throw new DfsError('DFS_ERR_BAD_RESPONSE', `"${printable(name)}" would be written outside ${directory}; left alone`)
  }

  // The directory itself was made before the first file.
  if (dirname(path) !== directory) await mkdir(dirname(path), {recursive: true})
  return path
}

/**
 * Downloads a file from every alive replica in parallel, in ranges, into a temp file beside the
 * destination; size and sha256 are checked before the rename, so a wrong or partial download never
 * takes the destination's place. With output '-' the verified temp file (in the temp dir) is then
 * copied to stdout, so stdout gets the file's exact bytes or none.
 */
export async function getFile(master: Peer, name: string, options: GetOptions = {}, given: {known?: FileInfo; path?: string} = {}): Promise<GetResult> {
  let {known} = given
  const corrupt = new Set<string>()
  /** Replicas that served bytes that did not match although their keeper found its copy good. */
  const untrusted = new Set<string>()
  // After a mismatch that no keeper's check explains (a bad link or proxy, a replica that lies),
  // replicas are read one at a time, so that the one that serves bad bytes shows itself.
  let oneAtATime = options.sources === 1
  let mismatch: IntegrityError | undefined
  // `known`: the file as a look-up of many names just answered it, for the first try.
  for (let failures = 0; ; known = undefined) {
    const info = known ?? (await statFile(master, name))
    try {
      const sources = oneAtATime ? 1 : options.sources
      return {...(await download(master, info, {...options, sources}, new Set([...corrupt, ...untrusted]), given.path)), corruptReplicas: [...corrupt]}
    } catch (error) {
      // Every replica left served bytes that did not match. (Nothing reached the destination or
      // stdout yet: both get the file only once it was verified.)
      if (mismatch && untrusted.size > 0 && error instanceof DfsError && error.code === 'DFS_ERR_NO_KEEPERS') throw mismatch
      // Every replica read from failed (killed, or trimmed meanwhile): ask the master again.
      if (error instanceof DfsError && error.code === 'DFS_ERR_KEEPER_UNREACHABLE') {
        if (++failures >= MAX_ATTEMPTS) throw error
        continue
      }

      if (!(error instanceof IntegrityError)) throw error
      mismatch = error
      // Bytes that do not match the master's sha256: report every replica read from, let the
      // master have each verified, and read again from the good ones. Each round that rules a
      // replica out brings the download nearer its end; only the others count as failures.
      const verdicts = await Promise.all(error.sources.map((keeper) => reportSuspect(master, info, keeper)))
      for (const verdict of verdicts) if (verdict.corrupt) corrupt.add(verdict.keeper)
      if (verdicts.some((verdict) => verdict.corrupt)) continue
      if (oneAtATime) {
        for (const keeper of error.sources) untrusted.add(keeper)
        continue
      }

      oneAtATime = true
      if (++failures >= MAX_ATTEMPTS) throw error
    }
  }
}

// A download is tried again after a failure that rules no replica out, at most this many times in
// all. Each try reads from the replicas the master names then: failover to other replicas, not a
// retry of the same requests (that is the peer's RetryPolicy).
const MAX_ATTEMPTS = 3

/** A finished download whose bytes did not match, with the replicas that served them. */
class IntegrityError extends DfsError {
  constructor(
    message: string,
    readonly sources: string[],
  ) {
    super('DFS_ERR_INTEGRITY', message)
  }
}

async function reportSuspect(master: Peer, info: FileInfo, keeper: string): Promise<SuspectVerdict> {
  try {
    return await master.call(masterRoutes.suspect, {params: {name: info.name}, body: {keeperId: keeper, fileId: info.fileId}})
  } catch {
    return {keeper, corrupt: false}
  }
}

/** The choice of a download whose sources the user counted: every one stays in use. */
function keepEverySource(): void {}

/** What a download reads its bytes from: a RangedDownload, or a frame of a batch read (FrameSource). */
type ByteSource = Pick<RangedDownload, 'rangeCount' | 'report' | 'run'>

/** A file's download from its alive replicas (less `exclude`), in ranges. */
function rangedDownload(master: Peer, info: FileInfo, options: GetOptions, exclude: ReadonlySet<string>): RangedDownload {
  const alive = info.replicas.filter((replica) => replica.alive && !exclude.has(replica.keeper))
  if (alive.length === 0) throw new DfsError('DFS_ERR_NO_KEEPERS', `no alive keeper holds a good replica of "${info.name}" right now`)
  const sources = shuffle(alive).slice(0, options.sources ?? alive.length)
  return new RangedDownload({
    name: info.name,
    fileId: info.fileId,
    size: info.size,
    sources: sources.map((replica) => ({keeper: replica.keeper, peer: new Peer({role: 'keeper', baseUrl: replica.url, agent: master.agent, credentials: showingGrant(replica.grant)})})),
    rangeSize: options.rangeSize ?? DEFAULTS.rangeSize,
    // Replicas the user counted (`--sources N`) are read from to the end; left to dfs, they are
    // chosen by the client's load as the download goes (chooseSources).
    ...(options.sources === undefined ? {} : {choose: keepEverySource}),
  })
}

/**
 * `exactPath`: where the file goes, as a get of many names chose it (no stat to see whether the
 * output names a directory; a directory in the file's place fails the rename, for that file alone).
 * `source`: where the bytes come from when not from the replicas in ranges (a frame of a batch read).
 */
async function download(master: Peer, info: FileInfo, options: GetOptions, exclude: ReadonlySet<string>, exactPath?: string, source?: ByteSource): Promise<Omit<GetResult, 'corruptReplicas'>> {
  const download = source ?? rangedDownload(master, info, options, exclude)
  const toStdout = options.output === '-'
  const path = toStdout ? '-' : (exactPath ?? (await destinationPath(options.output, info.name)))
  if (options.noClobber && !toStdout) await refuseExisting(path)
  // A file's temp copy sits beside it, so that the rename is atomic; stdout's sits in the temp dir,
  // since stdout cannot take a byte back: it gets the file only once the whole was verified.
  const tmpPath = join(toStdout ? tmpdir() : dirname(path), tempName(toStdout ? posix.basename(info.name) : basename(path)))
  const release = removeOnInterrupt(tmpPath)
  let renamed = false
  try {
    await writeVerified(download, info, tmpPath, path, options.onProgress)
    if (toStdout) await copyOut(tmpPath, options.stdout ?? process.stdout)
    else if (options.noClobber) {
      // link() never replaces: a file made at `path` while this one downloaded is left alone too.
      await link(tmpPath, path).catch((error: unknown) => {
        throw (error as {code?: string}).code === 'EEXIST' ? clobbered(path) : localFileError(path, error)
      })
    } else {
      await rename(tmpPath, path).catch((error: unknown) => {
        throw localFileError(path, error)
      })
      renamed = true
    }
  } finally {
    // Nothing is left to remove after the rename; stdout's copy goes in any case. A failure to
    // remove must not hide the error that brought us here.
    if (!renamed) await rm(tmpPath, {force: true}).catch(() => {})
    release()
  }

  return {name: info.name, size: info.size, sha256: info.sha256, path, sources: download.report}
}

// The longest file name of common file systems (NAME_MAX on Linux and macOS), in bytes.
const NAME_MAX = 255
let tempTag: string | undefined
let tempCount = 0

/**
 * `.NAME.<random>.dfs-part`, so that people see which download it belongs to; NAME is cut short
 * (at a character) when the whole would not fit in a file name, as with a 255-byte NAME.
 */
function tempName(name: string): string {
  // Random per process, counted within it: unique without a random draw per file.
  tempTag ??= randomBytes(6).toString('hex')
  const suffix = `.${tempTag}${(++tempCount).toString(16).padStart(4, '0')}.dfs-part`
  const room = NAME_MAX - 1 - Buffer.byteLength(suffix)
  let stem = ''
  for (const char of name) {
    if (Buffer.byteLength(stem + char) > room) break
    stem += char
  }

  return `.${stem}${suffix}`
}

/**
 * Downloads into a new file at `tmpPath`, checked against the master's size and sha256, and fsynced
 * unless it is stdout's copy (`destination` '-'): that one is read back at once and then removed.
 * Ranges are written as they arrive; with several ranges the file's finished prefix is read back
 * and hashed as it grows (in a worker for a large file), so the hash checks the bytes in the file;
 * a file of one range is hashed from the very buffers written, in order. Throws an IntegrityError naming the
 * replicas read from if the sha256 differs. A failure leaves the file for the caller to remove.
 */
async function writeVerified(download: ByteSource, info: FileInfo, tmpPath: string, destination: string, onProgress?: OnProgress): Promise<void> {
  let handle: FileHandle | undefined
  let hasher: FileHasher | undefined
  let behind: SyncBehind | undefined
  try {
    handle = await open(tmpPath, 'wx')
    const file = handle
    // A file of one range is written in order, from its first byte, by one request at a time (a
    // retry on another replica starts again at byte 0 once the failed one's writes landed): its
    // bytes are hashed as they are written, without a worker or a read-back (a small file's
    // largest cost after the requests themselves).
    const inOrder = download.rangeCount <= 1
    let inline: Hash | undefined
    const fileHasher = inOrder ? undefined : (hasher = new FileHasher(tmpPath, info.size >= HASH_WORKER_MIN))
    let received = 0
    // A copy that will be fsynced goes to disk while it arrives, so that the fsync at its end is short.
    behind = destination === '-' ? undefined : new SyncBehind(() => file.datasync())
    onProgress?.({file: info.name, phase: 'receiving', bytes: 0, total: info.size})
    await download.run(
      async (chunks, position) => {
        if (inOrder) {
          if (position === 0) inline = createHash('sha256')
          for (const chunk of chunks) inline!.update(chunk)
        }

        const bytes = byteLength(chunks)
        await writeAll(file, chunks, position, bytes)
        behind?.written(bytes)
        received += bytes
        onProgress?.({file: info.name, phase: 'receiving', bytes: received, total: info.size})
      },
      (bytes) => fileHasher?.written(bytes),
    )
    // Every range was checked for its length, so the file has the master's size.
    const sha256 = fileHasher ? await fileHasher.digest(info.size) : (inline ?? createHash('sha256')).digest('hex')
    if (sha256 !== info.sha256) {
      const sources = download.report.filter((source) => source.ranges > 0).map((source) => source.keeper)
      throw new IntegrityError(`downloaded "${info.name}" does not match the master's record (${info.size} bytes, sha256 ${sha256})`, sources)
    }

    if (destination !== '-') {
      await behind?.settle()
      await file.sync()
    }

    await file.close()
    handle = undefined
  } catch (error) {
    await behind?.idle()
    await handle?.close().catch(() => {})
    throw localFileError(destination === '-' ? tmpPath : destination, error)
  } finally {
    await hasher?.close()
  }
}

// From this size on, the file is hashed in a worker, beside the thread that receives it: its start
// (~0.1–0.25 s of CPU) is then a small part of the hashing it takes off that thread. Below it, the
// start would cost more than it gives, above all to a short get's start-to-exit time.
const HASH_WORKER_MIN = 256 * 1024 * 1024

/** Copies a verified temp file to the output stream; stdout itself is left open. */
async function copyOut(tmpPath: string, output: Writable): Promise<void> {
  try {
    await pipeline(createReadStream(tmpPath, {highWaterMark: CHUNK_SIZE}), output, {end: output !== process.stdout})
  } catch (error) {
    throw localFileError('stdout', error)
  }
}

/** Errors of the local disk or output as the catalogue's; our own errors pass unchanged. */
function localFileError(what: string, error: unknown): unknown {
  if (error instanceof DfsError || !(error as {code?: string}).code) return error
  return new DfsError('DFS_ERR_LOCAL_FILE', `cannot write ${what}: ${(error as Error).message}`, {cause: error})
}

function byteLength(chunks: Buffer[]): number {
  let total = 0
  for (const chunk of chunks) total += chunk.length
  return total
}

/** One writev, repeated for what it did not write; returns the position after the bytes. */
async function writeAll(handle: FileHandle, buffers: Buffer[], position: number, size: number): Promise<number> {
  let pending = buffers
  const end = position + size
  while (position < end) {
    let {bytesWritten} = await handle.writev(pending, position)
    if (bytesWritten === 0) throw new DfsError('DFS_ERR_LOCAL_FILE', 'a write to the temp file wrote nothing')
    position += bytesWritten
    let next = 0
    while (next < pending.length && bytesWritten >= pending[next]!.length) bytesWritten -= pending[next++]!.length
    pending = next < pending.length && bytesWritten > 0 ? [pending[next]!.subarray(bytesWritten), ...pending.slice(next + 1)] : pending.slice(next)
  }

  return position
}

/** A file goes by its base name ("videos/a.mp4" to "a.mp4"), as `cp` does, unless `output` names the file. */
async function destinationPath(output: string | undefined, name: string): Promise<string> {
  const base = posix.basename(name)
  // "downloads/" names a directory, made if needed.
  if (output !== undefined && /[/\\]$/.test(output)) {
    await mkdir(output, {recursive: true})
    return join(resolve(output), base)
  }

  const path = resolve(output ?? base)
  const info = await stat(path).catch(() => undefined)
  return info?.isDirectory() ? join(path, base) : path
}

async function refuseExisting(path: string): Promise<void> {
  const existing = await stat(path).catch(() => undefined)
  if (existing) throw clobbered(path)
}

function clobbered(path: string): DfsError {
  return new DfsError('DFS_ERR_EXISTS', `${path} exists; --no-clobber leaves it alone`)
}

function shuffle<T>(items: T[]): T[] {
  const copy = [...items]
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[copy[i], copy[j]] = [copy[j]!, copy[i]!]
  }

  return copy
}
