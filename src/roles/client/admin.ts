import {TOKEN_ID} from '../../lib/client-tokens.js'
import {DfsError} from '../../lib/errors.js'
import {assertValidName} from '../../lib/names.js'
import type {Peer} from '../../lib/peer-client.js'
import {MAX_URL_TTL_SECONDS, masterRoutes, type FileInfo, type FileSummary, type FileUrl, type ForgottenKeeper, type FsckReport, type KeeperInfo, type RemovedFile, type RevokeTokenResponse} from '../../lib/protocol.js'

// The client's read-and-delete calls: each is one request to the master.

export async function listFiles(master: Peer): Promise<FileSummary[]> {
  return (await master.call(masterRoutes.list, {})).files
}

export async function statFile(master: Peer, name: string): Promise<FileInfo> {
  assertValidName(name)
  return master.call(masterRoutes.stat, {params: {name}})
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

export async function fsck(master: Peer): Promise<FsckReport> {
  return master.call(masterRoutes.fsck, {})
}

/** Adds a client token's id to the master's revoked tokens. */
export async function revokeToken(master: Peer, id: string): Promise<RevokeTokenResponse> {
  if (!TOKEN_ID.test(id)) throw new DfsError('DFS_ERR_BAD_REQUEST', `${JSON.stringify(id)} is not a token id: dfs token create prints it (16 letters, digits, - or _)`)
  return master.call(masterRoutes.revokeToken, {body: {id}})
}
