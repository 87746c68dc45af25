import {TOKEN_ID} from '../../lib/client-tokens.js'
import {DfsError} from '../../lib/errors.js'
import {assertValidName} from '../../lib/names.js'
import type {Peer} from '../../lib/peer-client.js'
import {masterRoutes, type FileInfo, type FileSummary, type FsckReport, type KeeperInfo, type RemovedFile, type RevokeTokenResponse} from '../../lib/protocol.js'

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
