import type {Outcome} from '../../lib/base-command.js'
import {DfsError, asDfsError, catalogueError} from '../../lib/errors.js'
import {folderPrefix, selectNames} from '../../lib/name-patterns.js'
import {assertValidName} from '../../lib/names.js'
import type {Peer} from '../../lib/peer-client.js'
import {MAX_LOOKUP_NAMES, MAX_PAGE_SIZE, MAX_URL_TTL_SECONDS, TOKEN_ID, masterRoutes, type FileInfo, type FileSummary, type FileUrl, type ForgottenKeeper, type FsckReport, type KeeperInfo, type RemovedFile, type RevokeTokenResponse} from '../../lib/protocol.js'

// The client's read-and-delete calls: each is one request to the master.

/**
 * The files `pattern` selects (a prefix or a glob, name-patterns.ts; every file without), by
 * name, a page of the master's at a time: neither side holds a listing of 100,000 files whole,
 * and the first page is there to print at once. Pages are not one snapshot: a file stored or
 * removed meanwhile may be in or out, as with S3's paged listings.
 */
export async function* filePages(master: Peer, pattern?: string): AsyncGenerator<FileSummary[]> {
  const selection = selectNames(pattern)
  let after: string | undefined
  do {
    const page = await master.call(masterRoutes.list, {query: {prefix: selection.prefix || undefined, after, limit: MAX_PAGE_SIZE}})
    yield page.files.filter((file) => selection.matches(file.name))
    after = page.next
  } while (after !== undefined)
}

/** Every stored file, or those `pattern` selects, gathered from filePages. */
export async function listFiles(master: Peer, pattern?: string): Promise<FileSummary[]> {
  const files: FileSummary[] = []
  for await (const page of filePages(master, pattern)) files.push(...page)
  return files
}

export async function statFile(master: Peer, name: string): Promise<FileInfo> {
  assertValidName(name)
  return master.call(masterRoutes.stat, {params: {name}})
}

/**
 * Many files' look-ups, MAX_LOOKUP_NAMES names per request, in the order of `names`: each a file,
 * or the error its own look-up (GET /files/:name) would have thrown.
 */
export async function lookupFiles(master: Peer, names: string[]): Promise<Array<FileInfo | DfsError>> {
  const found: Array<FileInfo | DfsError> = []
  for (let start = 0; start < names.length; start += MAX_LOOKUP_NAMES) {
    const {files} = await master.call(masterRoutes.lookup, {body: {names: names.slice(start, start + MAX_LOOKUP_NAMES)}})
    if (files.length !== Math.min(MAX_LOOKUP_NAMES, names.length - start)) throw new DfsError('DFS_ERR_BAD_RESPONSE', `the master answered a look-up of ${names.length - start} names with ${files.length} entries`)
    for (const file of files) {
      found.push('error' in file ? (catalogueError(file) ?? new DfsError('DFS_ERR_BAD_RESPONSE', `the master's look-up of "${file.name}" failed with ${file.error}: ${file.message}`)) : file)
    }
  }

  return found
}

export async function clusterStatus(master: Peer): Promise<KeeperInfo[]> {
  return (await master.call(masterRoutes.keepers, {})).keepers
}

export interface Space {
  capacity: number
  used: number
  free: number
}

/** The space of each keeper (used: its replicas' bytes; free: its disk's) and of the alive ones together. */
export async function clusterSpace(master: Peer): Promise<{keepers: Array<Space & {id: string; zone: string; alive: boolean}>; total: Space}> {
  const keepers = (await clusterStatus(master)).map((keeper) => ({
    id: keeper.id,
    zone: keeper.zone,
    alive: keeper.alive,
    capacity: keeper.storedBytes + keeper.freeBytes,
    used: keeper.storedBytes,
    free: keeper.freeBytes,
  }))
  const total = {capacity: 0, used: 0, free: 0}
  for (const keeper of keepers.filter((one) => one.alive)) {
    total.capacity += keeper.capacity
    total.used += keeper.used
    total.free += keeper.free
  }

  return {keepers, total}
}

/** Starts draining a keeper; answers at once, with the keeper as `status` shows it. */
export async function drainKeeper(master: Peer, id: string): Promise<KeeperInfo> {
  return master.call(masterRoutes.drainKeeper, {params: {id}})
}

/** Forgets a dead or drained keeper and its replicas. */
export async function forgetKeeper(master: Peer, id: string): Promise<ForgottenKeeper> {
  return master.call(masterRoutes.forgetKeeper, {params: {id}})
}

/** A URL of the file at one keeper that needs no credential but the read grant it carries. */
export async function fileUrl(master: Peer, name: string, ttlMs?: number): Promise<FileUrl> {
  assertValidName(name)
  const ttl = ttlMs === undefined ? undefined : Math.ceil(ttlMs / 1000)
  if (ttl !== undefined && ttl > MAX_URL_TTL_SECONDS) {
    throw new DfsError('DFS_ERR_BAD_REQUEST', `a URL lives at most ${MAX_URL_TTL_SECONDS / 3600}h: its grant cannot be taken back, only outlived`)
  }

  return master.call(masterRoutes.fileUrl, {params: {name}, query: {ttl}})
}

export async function removeFile(master: Peer, name: string): Promise<RemovedFile> {
  assertValidName(name)
  return master.call(masterRoutes.remove, {params: {name}})
}

/** Renames a stored file in the master's table: no bytes move. */
export async function moveFile(master: Peer, name: string, to: string): Promise<FileInfo> {
  assertValidName(name)
  assertValidName(to)
  return master.call(masterRoutes.move, {params: {name}, body: {to}})
}

/** Space taken by some files: `bytes` once each, `replicaBytes` summed over their alive replicas. */
export interface SpaceUsed {
  name: string
  files: number
  bytes: number
  replicaBytes: number
}

/**
 * `dfs du`: the space the files `pattern` selects take, in total and per entry of the folder the
 * pattern starts in (a file there, or a folder with everything below it, as `du -d 1` shows).
 */
export async function diskUsage(master: Peer, pattern = ''): Promise<{total: SpaceUsed; entries: SpaceUsed[]}> {
  const files = await listFiles(master, pattern)
  const {prefix} = selectNames(pattern)
  const base = prefix.slice(0, prefix.lastIndexOf('/') + 1)
  const total: SpaceUsed = {name: pattern, files: 0, bytes: 0, replicaBytes: 0}
  const entries = new Map<string, SpaceUsed>()
  for (const file of files) {
    const rest = file.name.slice(base.length)
    const slash = rest.indexOf('/')
    const name = base + (slash === -1 ? rest : rest.slice(0, slash + 1))
    let entry = entries.get(name)
    if (!entry) entries.set(name, (entry = {name, files: 0, bytes: 0, replicaBytes: 0}))
    for (const used of [entry, total]) {
      used.files++
      used.bytes += file.size
      used.replicaBytes += file.size * file.replicas
    }
  }

  return {total, entries: [...entries.values()]}
}

export type RemoveOutcome = Outcome<RemovedFile> & {name: string}

/**
 * Removes each named file, or with `recursive` every file under each named folder (`videos` means
 * `videos/`); each succeeds or fails on its own. A folder that holds no file is a failure.
 */
export async function removeFiles(master: Peer, names: string[], options: {recursive?: boolean} = {}): Promise<RemoveOutcome[]> {
  const outcomes: RemoveOutcome[] = []
  const attempt = async (name: string, work: () => Promise<RemovedFile>) => {
    try {
      outcomes.push({ok: true, name, result: await work()})
    } catch (error) {
      outcomes.push({ok: false, name, error: asDfsError(error)})
    }
  }

  for (const name of names) {
    if (!options.recursive) {
      await attempt(name, () => removeFile(master, name))
      continue
    }

    const folder = folderPrefix(name)
    const files = await listFiles(master, folder)
    if (files.length === 0) outcomes.push({ok: false, name: folder, error: new DfsError('DFS_ERR_NOT_FOUND', `no files under "${folder}"`)})
    // One request each, in turn: a removal is one small write of the master's table.
    for (const file of files) await attempt(file.name, () => removeFile(master, file.name))
  }

  return outcomes
}

export async function fsck(master: Peer): Promise<FsckReport> {
  return master.call(masterRoutes.fsck, {})
}

/** Adds a client token's id to the master's revoked tokens. */
export async function revokeToken(master: Peer, id: string): Promise<RevokeTokenResponse> {
  if (!TOKEN_ID.test(id)) throw new DfsError('DFS_ERR_BAD_REQUEST', `${JSON.stringify(id)} is not a token id: dfs token create prints it (16 letters, digits, - or _)`)
  return master.call(masterRoutes.revokeToken, {body: {id}})
}
