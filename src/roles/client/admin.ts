import {TOKEN_ID} from '../../lib/client-tokens.js'
import {DfsError} from '../../lib/errors.js'
import {callJson} from '../../lib/http-client.js'
import {assertValidName} from '../../lib/names.js'
import type {FileInfo, FileSummary, FsckReport, KeeperInfo, ListResponse, StatusResponse} from '../../lib/protocol.js'
import type {RevokeTokenResponse} from '../master/token-routes.js'

// The client's read-and-delete calls: each is one request to the master.

export async function listFiles(master: string): Promise<FileSummary[]> {
  return (await callJson<ListResponse>('master', master, '/files')).files
}

export async function statFile(master: string, name: string): Promise<FileInfo> {
  assertValidName(name)
  return callJson<FileInfo>('master', master, `/files/${encodeURIComponent(name)}`)
}

export async function clusterStatus(master: string): Promise<KeeperInfo[]> {
  return (await callJson<StatusResponse>('master', master, '/keepers')).keepers
}

export async function removeFile(master: string, name: string): Promise<{name: string; fileId: string}> {
  assertValidName(name)
  return callJson('master', master, `/files/${encodeURIComponent(name)}`, {method: 'DELETE'})
}

export async function fsck(master: string): Promise<FsckReport> {
  return callJson<FsckReport>('master', master, '/fsck')
}

/** Adds a client token's id to the master's revoked tokens. */
export async function revokeToken(master: string, id: string): Promise<RevokeTokenResponse> {
  if (!TOKEN_ID.test(id)) throw new DfsError('DFS_ERR_BAD_REQUEST', `${JSON.stringify(id)} is not a token id: dfs token create prints it (16 letters, digits, - or _)`)
  return callJson<RevokeTokenResponse>('master', master, '/tokens/revoke', {body: {id}})
}
