import {createReadStream} from 'node:fs'
import {mkdir, open, readdir, readFile, rename, rm, stat, statfs} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import {PassThrough, Writable, type Readable, type Transform} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import {CHUNK_SIZE, asStorageError, placeDurably, spoolDurably, syncDirectory, verify, writeDurably, writeFileDurably} from '../../lib/durable-file.js'
import {DfsError} from '../../lib/errors.js'
import {HashingStream, SHA256_HEX} from '../../lib/hashing.js'
import {nameProblem} from '../../lib/names.js'
import type {InventoryItem, VerifyResult} from '../../lib/protocol.js'

const FILE_ID = /^[A-Za-z0-9_-]{1,64}$/
/**
 * Where an upload's description lies until the master answered its commit: `blobs/<fileId>` +
 * this. Deciding the upload is one rename to `<fileId>.json` (no second write and fsync of it).
 */
const UNDECIDED = '.undecided.json'
// How long a statfs reading of the free space is used before the disk is asked again.
const STATFS_TTL_MS = 250

/**
 * The bytes on a keeper's disk. Each file lives at `blobs/<fileId>` with its description beside it
 * in `blobs/<fileId>.json`; names never become paths. Uploads are written under `tmp/` and renamed
 * into place only when complete, verified and fsynced, so a crash leaves either nothing or a whole
 * file. Files are published (served by name, reported to the master) only once the master knows them.
 */
export class FileStore {
  readonly blobDir: string
  readonly tmpDir: string
  readonly quarantineDir: string
  /** Blobs moved to quarantine/ when this store was opened, and why: the keeper logs them. */
  readonly quarantined: Array<{fileId: string; reason: string}> = []
  readonly #byId = new Map<string, InventoryItem>()
  readonly #byName = new Map<string, InventoryItem>()
  /** Files on disk that the master has not confirmed yet (an upload awaiting its commit). */
  readonly #unpublished = new Map<string, InventoryItem>()
  /** Description writes under way, per file id: each waits for the one before it. */
  readonly #describing = new Map<string, Promise<void>>()
  /** One-pass uploads whose bytes are in tmp/, fsynced, waiting for the client's sha256 (seal). */
  readonly #held = new Map<string, Held>()
  #storedBytes = 0
  /** Bytes promised to uploads and copies under way, so two of them cannot both count on the same free space. */
  #reserved = 0
  /** The disk's free bytes at the last statfs, when that was, and the bytes of files stored since. */
  #diskFree: number | undefined
  #diskFreeAt = 0
  #writtenSinceStatfs = 0
  #statfs: Promise<void> | undefined

  readonly dataDir: string

  private constructor(dataDir: string) {
    this.dataDir = resolve(dataDir)
    this.blobDir = join(dataDir, 'blobs')
    this.tmpDir = join(dataDir, 'tmp')
    this.quarantineDir = join(dataDir, 'quarantine')
  }

  /** Opens a data directory: removes temp files left by a crash, loads every complete file. */
  static async open(dataDir: string): Promise<FileStore> {
    const store = new FileStore(dataDir)
    await mkdir(store.blobDir, {recursive: true})
    await rm(store.tmpDir, {recursive: true, force: true})
    await mkdir(store.tmpDir, {recursive: true})
    await store.#load()
    return store
  }

  /**
   * Drops a published file's undecided mark: the master's answer to its commit was heard. Its
   * description, written and fsynced with the blob, is renamed from `<fileId>.undecided.json` to
   * `<fileId>.json`. Until that rename is on disk, a restart finds the file undecided and asks the
   * master again (which answers the same), so it needs no directory fsync of its own. A description
   * that carries the mark inside (`"undecided": true` in `<fileId>.json`, as keepers wrote it
   * before) is rewritten without it instead.
   */
  async decide(fileId: string): Promise<void> {
    await this.#describe(fileId, async () => {
      const file = this.#byId.get(fileId)
      if (!file) return
      const path = this.pathOf(fileId)
      try {
        await rename(`${path}${UNDECIDED}`, `${path}.json`)
        return
      } catch (error) {
        if ((error as {code?: string}).code !== 'ENOENT') throw asStorageError(error)
      }

      await writeFileDurably(this.tmpDir, `${path}.json`, description(file), {syncDirectory: false})
    })
  }

  /**
   * Changes a file's description on disk, one change at a time per file (a decision and a rename
   * must not land out of order); `write` runs when its turn comes.
   */
  #describe(fileId: string, write: () => Promise<void>): Promise<void> {
    const next = (this.#describing.get(fileId) ?? Promise.resolve()).then(write)
    const settled = next.catch(() => {})
    this.#describing.set(fileId, settled)
    void settled.then(() => {
      if (this.#describing.get(fileId) === settled) this.#describing.delete(fileId)
    })
    return next
  }

  /** Files whose commit had no answer before the last stop. */
  undecided(): InventoryItem[] {
    return [...this.#unpublished.values()]
  }

  async #load(): Promise<void> {
    const entries = new Set(await readdir(this.blobDir))
    for (const entry of entries) {
      if (!entry.endsWith('.json')) {
        // A blob whose description was never written: the crash came between the two renames, so
        // it was never committed or reported (both happen after the directory fsync).
        if (!entries.has(`${entry}.json`) && !entries.has(`${entry}${UNDECIDED}`)) await rm(join(this.blobDir, entry), {force: true})
        continue
      }

      const marked = entry.endsWith(UNDECIDED)
      const fileId = entry.slice(0, -(marked ? UNDECIDED : '.json').length)
      // No blob; or an undecided description beside the decided one, which a rename made after it
      // (a decision or a dfs mv): the decided one stands.
      if (!entries.has(fileId) || (marked && entries.has(`${fileId}.json`))) {
        await rm(join(this.blobDir, entry), {force: true})
        continue
      }

      const description = await this.#readDescription(fileId, entry)
      if ('problem' in description) await this.#quarantine(fileId, entry, description.problem)
      else if (marked || description.undecided) this.#unpublished.set(fileId, description.file)
      else this.#publish(description.file)
    }
  }

  /**
   * A blob's description, or what is wrong with it. Only a description that was read and found
   * invalid condemns its blob; one that cannot be read at all (EIO, EMFILE, EACCES) proves nothing
   * about the replica, so the keeper refuses to start rather than lose it.
   */
  async #readDescription(fileId: string, entry: string): Promise<{file: InventoryItem; undecided: boolean} | {problem: string}> {
    const path = join(this.blobDir, entry)
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (error) {
      const reason = (error as {code?: string}).code ?? (error as Error).message
      throw new Error(`cannot read ${path} (${reason}); the keeper does not start on a data dir it cannot read, and removed nothing`, {cause: error})
    }

    let item: InventoryItem & {undecided?: boolean}
    try {
      item = JSON.parse(text) as InventoryItem & {undecided?: boolean}
    } catch {
      return {problem: 'its description is not JSON'}
    }

    const valid =
      item !== null &&
      typeof item === 'object' &&
      item.fileId === fileId &&
      nameProblem(item.name) === undefined &&
      Number.isSafeInteger(item.size) &&
      item.size >= 0 &&
      SHA256_HEX.test(item.sha256)
    if (!valid || !FILE_ID.test(fileId)) return {problem: 'its description does not describe a valid file of this id'}
    return {file: pick(item), undecided: item.undecided === true}
  }

  /**
   * Moves a blob and its invalid description out of blobs/ into quarantine/, never deleting them:
   * the bytes may still be the only good copy somewhere, and an operator decides what they are.
   */
  async #quarantine(fileId: string, descriptionEntry: string, problem: string): Promise<void> {
    await mkdir(this.quarantineDir, {recursive: true})
    let target = fileId
    // A blob of this id quarantined before is kept too.
    while (await stat(join(this.quarantineDir, target)).catch(() => undefined)) target = `${fileId}.${Date.now()}`
    await rename(join(this.blobDir, fileId), join(this.quarantineDir, target))
    await rename(join(this.blobDir, descriptionEntry), join(this.quarantineDir, `${target}${descriptionEntry.slice(fileId.length)}`))
    await syncDirectory(this.quarantineDir)
    await syncDirectory(this.blobDir)
    this.quarantined.push({fileId, reason: `${problem}; moved to ${join(this.quarantineDir, target)}`})
  }

  /** Where the blob of a file id lives: only the keeper knows (the master never records it). */
  pathOf(fileId: string): string {
    return blobPath(this.dataDir, fileId)
  }

  /**
   * Streams a file to disk durably and verified; it is kept but not published until `publish`.
   * Any failure (short body, wrong hash, full disk) leaves no trace. An upload is written
   * `undecided` (its description at `<fileId>.undecided.json`): a restart before `decide` makes it
   * neither a file nor garbage until the master says whether it recorded it. `firstBytes` is told the body's first bytes (HashingStream's `head`).
   */
  async receive(source: Readable, item: InventoryItem, options: {undecided?: boolean; firstBytes?: (head: Buffer) => void} = {}): Promise<InventoryItem> {
    const path = this.pathOf(item.fileId)
    if (this.#byId.has(item.fileId) || this.#unpublished.has(item.fileId)) {
      throw new DfsError('DFS_ERR_EXISTS', `this keeper already holds file id ${item.fileId}`)
    }

    await this.#reserve(item.size)
    const file = pick(item)
    this.#unpublished.set(item.fileId, file)
    try {
      // Blob and description land together: both fsynced in tmp/, renamed, one directory fsync.
      const {head} = await writeDurably(source, this.tmpDir, path, item, {path: `${path}${options.undecided ? UNDECIDED : '.json'}`, data: description(item)})
      this.#writtenSinceStatfs += item.size
      options.firstBytes?.(head)
    } catch (error) {
      this.#unpublished.delete(item.fileId)
      await this.#removeFromDisk(item.fileId)
      throw error
    } finally {
      this.#reserved -= item.size
    }

    return file
  }

  /**
   * Streams a one-pass upload to a temp file, fsynced, and holds it there (no file yet: not in
   * blobs/, not served, not in the inventory) until `seal` names its sha256. Returns the sha256 the
   * keeper computed. Any failure leaves no trace.
   */
  async hold(source: Readable, upload: Omit<InventoryItem, 'sha256'>): Promise<{size: number; sha256: string}> {
    if (this.#byId.has(upload.fileId) || this.#unpublished.has(upload.fileId) || this.#held.has(upload.fileId)) {
      throw new DfsError('DFS_ERR_EXISTS', `this keeper already holds file id ${upload.fileId}`)
    }

    await this.#reserve(upload.size)
    const held: Held = {upload, path: undefined}
    this.#held.set(upload.fileId, held)
    let spooled
    try {
      spooled = await spoolDurably(source, this.tmpDir)
      this.#writtenSinceStatfs += spooled.size
      held.path = spooled.path
      held.sha256 = spooled.sha256
      held.head = spooled.head
      // Only the size was announced; the sha256 is the client's to name when it seals.
      verify(spooled, {size: upload.size, sha256: spooled.sha256})
    } catch (error) {
      this.#held.delete(upload.fileId)
      if (spooled) await rm(spooled.path, {force: true})
      throw error
    } finally {
      this.#reserved -= upload.size
    }

    return {size: spooled.size, sha256: spooled.sha256}
  }

  /** The held upload of that id whose bytes are all here, if there is one. */
  held(fileId: string): Omit<InventoryItem, 'sha256'> | undefined {
    const held = this.#held.get(fileId)
    return held?.sha256 === undefined ? undefined : held.upload
  }

  /**
   * Makes a held upload a file (unpublished, as `receive` leaves one) if `sha256` is the digest the
   * keeper computed of its bytes; if not, the bytes are removed and the answer is
   * DFS_ERR_CHECKSUM_MISMATCH: a byte corrupted in transit never becomes a stored file. `undecided`
   * and `firstBytes` as for `receive`.
   */
  async seal(fileId: string, sha256: string, options: {undecided?: boolean; firstBytes?: (head: Buffer) => void} = {}): Promise<InventoryItem> {
    const held = this.#held.get(fileId)
    if (!held?.path || held.sha256 === undefined) throw new DfsError('DFS_ERR_UNKNOWN_UPLOAD', `this keeper holds no upload ${fileId} to seal (never received whole, or expired)`)
    this.#held.delete(fileId)
    const file = pick({...held.upload, sha256: held.sha256})
    try {
      verify(file, {size: held.upload.size, sha256})
      this.#unpublished.set(fileId, file)
      await placeDurably(held.path, this.pathOf(fileId), {path: `${this.pathOf(fileId)}${options.undecided ? UNDECIDED : '.json'}`, data: description(file)})
      if (held.head) options.firstBytes?.(held.head)
    } catch (error) {
      this.#unpublished.delete(fileId)
      await rm(held.path, {force: true})
      await this.#removeFromDisk(fileId)
      throw error
    }

    return file
  }

  /** Removes a held upload that was never sealed (given up, or its grant expired). Returns whether one was held. */
  async dropHeld(fileId: string): Promise<boolean> {
    const held = this.#held.get(fileId)
    if (!held?.path) return false
    this.#held.delete(fileId)
    await rm(held.path, {force: true})
    return true
  }

  async #reserve(size: number): Promise<void> {
    await this.freeBytes()
    // The cached figure may predate deletes: look at the disk again before saying no.
    if (size > this.#free()) await this.freeBytes(true)
    // Counted after the last await, in the same turn as the reservation below: uploads that arrive
    // together await the same statfs, and each must see the others' reservations.
    const free = this.#free()
    if (size > free) {
      throw new DfsError('DFS_ERR_INSUFFICIENT_STORAGE', `the keeper has ${Math.max(0, free)} bytes free, the file needs ${size}`)
    }

    this.#reserved += size
  }

  /** Makes a received file visible: served by name and reported to the master. */
  publish(file: InventoryItem): void {
    this.#unpublished.delete(file.fileId)
    this.#publish(file)
  }

  #publish(file: InventoryItem): void {
    const previous = this.#byName.get(file.name)
    this.#byId.set(file.fileId, file)
    this.#storedBytes += file.size
    // A newer generation of a name wins; the older one is deleted when the master says so.
    if (!previous || previous.fileId !== file.fileId) this.#byName.set(file.name, file)
  }

  /**
   * Gives a published file the name the master now knows it by (dfs mv): its description is
   * rewritten durably, so a table rebuilt from keepers (master --recover) finds the new name.
   * Returns whether this keeper holds that generation.
   */
  async rename(fileId: string, name: string): Promise<boolean> {
    const file = this.#byId.get(fileId)
    if (!file) return false
    if (file.name === name) return true
    const renamed = {...file, name}
    await this.#describe(fileId, () => writeFileDurably(this.tmpDir, `${this.pathOf(fileId)}.json`, JSON.stringify(pick(renamed))))
    this.#byId.set(fileId, renamed)
    if (this.#byName.get(file.name)?.fileId === fileId) {
      this.#byName.delete(file.name)
      const older = [...this.#byId.values()].find((other) => other.name === file.name)
      if (older) this.#byName.set(older.name, older)
    }

    const current = this.#byName.get(name)
    // As at publish: the newer generation of a name is the one served by name alone.
    if (!current || (current.createdAt ?? 0) <= (renamed.createdAt ?? 0)) this.#byName.set(name, renamed)
    return true
  }

  /** Removes a file, published or not, from the index and the disk. Returns whether it existed. */
  async remove(fileId: string): Promise<boolean> {
    const file = this.#byId.get(fileId) ?? this.#unpublished.get(fileId)
    this.#unpublished.delete(fileId)
    if (this.#byId.delete(fileId) && file) {
      this.#storedBytes -= file.size
      if (this.#byName.get(file.name)?.fileId === fileId) {
        this.#byName.delete(file.name)
        const older = [...this.#byId.values()].find((other) => other.name === file.name)
        if (older) this.#byName.set(older.name, older)
      }
    }

    if (file) await this.#removeFromDisk(fileId)
    return file !== undefined
  }

  async #removeFromDisk(fileId: string): Promise<void> {
    // A description write under way would put the description back after the blob is gone.
    await this.#describing.get(fileId)
    const path = this.pathOf(fileId)
    await rm(`${path}.json`, {force: true})
    await rm(`${path}${UNDECIDED}`, {force: true})
    await rm(path, {force: true})
  }

  /**
   * Re-reads a stored file and checks it against its recorded size and sha256 (the scrubber's and
   * a suspicious reader's check). `pace` lets the caller throttle the read. A missing file is bad.
   */
  async verify(file: InventoryItem, pace?: Transform): Promise<VerifyResult> {
    const hashing = new HashingStream()
    try {
      const discard = new Writable({write: (_chunk, _encoding, done) => done()})
      await pipeline(createReadStream(this.pathOf(file.fileId), {highWaterMark: CHUNK_SIZE}), pace ?? new PassThrough(), hashing, discard)
    } catch (error) {
      if ((error as {code?: string}).code === 'ENOENT') return {ok: false, size: 0, sha256: ''}
      throw error
    }

    return {ok: hashing.bytes === file.size && hashing.digest === file.sha256, size: hashing.bytes, sha256: hashing.digest}
  }

  /**
   * The published file of that name, or of that generation when one is given: a generation is
   * found by its id alone, as the master may have renamed it (dfs mv) since this keeper stored it.
   */
  get(name: string, fileId?: string): InventoryItem | undefined {
    if (fileId !== undefined) return this.#byId.get(fileId)

    return this.#byName.get(name)
  }

  /**
   * A small file's bytes in one buffer, and its mtime, through one descriptor (open, fstat, one
   * read, close): what a GET of the whole file needs, without a read stream. Undefined when the
   * blob is not exactly its recorded size or cannot be read: the stream path then serves it as it
   * is, or its error.
   */
  async readWhole(file: InventoryItem): Promise<{bytes: Buffer; modified: Date} | undefined> {
    const handle = await open(this.pathOf(file.fileId), 'r').catch(() => undefined)
    if (!handle) return undefined
    try {
      const {size, mtime} = await handle.stat()
      if (size !== file.size) return undefined
      const bytes = Buffer.allocUnsafe(size)
      let read = 0
      while (read < size) {
        const {bytesRead} = await handle.read(bytes, read, size - read, read)
        if (bytesRead === 0) return undefined
        read += bytesRead
      }

      return {bytes, modified: mtime}
    } catch {
      return undefined
    } finally {
      await handle.close().catch(() => {})
    }
  }

  byId(fileId: string): InventoryItem | undefined {
    return this.#byId.get(fileId)
  }

  /** Every published file, as the master wants it in a registration (a block report). */
  inventory(): InventoryItem[] {
    return [...this.#byId.values()]
  }

  get fileCount(): number {
    return this.#byId.size
  }

  get storedBytes(): number {
    return this.#storedBytes
  }

  /**
   * Space left for new files: free on the disk, less what uploads under way were promised. The
   * disk's figure is read at most every STATFS_TTL_MS (or now, with `fresh`); files stored since
   * that reading are subtracted too, so the cached figure only ever errs on the low side.
   */
  async freeBytes(fresh = false): Promise<number> {
    if (fresh || this.#diskFree === undefined || Date.now() - this.#diskFreeAt > STATFS_TTL_MS) await this.#readDiskFree()
    return this.#free()
  }

  /** Free bytes by the last statfs, less what was written since and what is reserved now. */
  #free(): number {
    return this.#diskFree! - this.#writtenSinceStatfs - this.#reserved
  }

  #readDiskFree(): Promise<void> {
    this.#statfs ??= (async () => {
      // Files stored before this reading starts are in it; those stored while it runs may not be.
      const writtenBefore = this.#writtenSinceStatfs
      try {
        const stats = await statfs(this.dataDir)
        this.#diskFree = Number(stats.bavail) * Number(stats.bsize)
        this.#diskFreeAt = Date.now()
        this.#writtenSinceStatfs -= writtenBefore
      } catch (error) {
        throw asStorageError(error)
      } finally {
        this.#statfs = undefined
      }
    })()
    return this.#statfs
  }
}

/** A one-pass upload held in tmp/: `path` and `sha256` once its bytes are all there and fsynced. */
interface Held {
  upload: Omit<InventoryItem, 'sha256'>
  path: string | undefined
  sha256?: string
  head?: Buffer
}

/** The blob of `fileId` in a keeper's data dir: `DATA/blobs/<fileId>`, never a name. */
export function blobPath(dataDir: string, fileId: string): string {
  if (!FILE_ID.test(fileId)) throw new DfsError('DFS_ERR_BAD_REQUEST', `invalid file id "${fileId}"`)
  return join(dataDir, 'blobs', fileId)
}

/** A file's description as stored beside its blob (whether it is undecided is in its file's name). */
function description(item: InventoryItem): string {
  return JSON.stringify(pick(item))
}

function pick(item: InventoryItem): InventoryItem {
  // A description without a valid creation time (written before there was one) still describes its blob.
  const createdAt = Number.isSafeInteger(item.createdAt) && item.createdAt! >= 0 ? {createdAt: item.createdAt} : {}
  return {fileId: item.fileId, name: item.name, size: item.size, sha256: item.sha256, ...createdAt}
}
