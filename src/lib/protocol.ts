// The one source of truth for the HTTP protocol between client, master and keepers: the shapes of
// every JSON body (as TypeScript types) and the JSON schemas the servers validate them with.
// docs/protocol.md describes the same endpoints for people.

import {MAX_NAME_BYTES} from './names.js'

/** Header in which a client announces the sha256 of the body it uploads. */
export const SHA256_HEADER = 'x-dfs-sha256'
/** Header in which a keeper names the generation of the file it serves. */
export const FILE_ID_HEADER = 'x-dfs-file-id'

export interface ErrorBody {
  error: string
  message: string
}

// ---- master: keepers -------------------------------------------------------------------------

/** One stored file as a keeper reports it (like an HDFS block report entry). */
export interface InventoryItem {
  fileId: string
  name: string
  size: number
  sha256: string
}

export interface KeeperStats {
  url: string
  freeBytes: number
  storedBytes: number
  fileCount: number
  activeTransfers: number
}

export interface RegisterRequest extends KeeperStats {
  /** The id this keeper was given before; absent on its very first start. */
  id?: string
  inventory: StoredFile[]
}

/** A replica a keeper must delete: the file was removed, or this copy is surplus or stale. */
export interface DeleteCommand {
  fileId: string
  name: string
}

export interface RegisterResponse {
  id: string
  deletes: DeleteCommand[]
}

export interface HeartbeatRequest extends KeeperStats {
  /** Delete orders carried out since the last heartbeat (file ids): the master stops sending them. */
  deleted?: string[]
}

export interface HeartbeatResponse {
  deletes: DeleteCommand[]
}

export interface KeeperInfo {
  id: string
  url: string
  alive: boolean
  lastHeartbeat: string | null
  files: number
  storedBytes: number
  freeBytes: number
  activeTransfers: number
}

export interface StatusResponse {
  keepers: KeeperInfo[]
}

// ---- master: files ---------------------------------------------------------------------------

export interface UploadRequest {
  name: string
  size: number
  sha256: string
  /** Keepers the client already failed to upload to. */
  exclude?: string[]
}

export interface UploadTicket {
  uploadId: string
  keeper: {id: string; url: string}
}

export interface CommitRequest {
  keeperId: string
  /** The name the keeper received the bytes under; it must be the ticket's. */
  name: string
  size: number
  sha256: string
  path: string
}

export interface ReplicaReport {
  keeperId: string
  fileId: string
  size: number
  sha256: string
  path: string
}

export interface ReplicaInfo {
  keeper: string
  url: string
  alive: boolean
  path: string
}

export interface FileInfo {
  name: string
  fileId: string
  size: number
  sha256: string
  createdAt: string
  target: number
  replicas: ReplicaInfo[]
}

export interface FileSummary {
  name: string
  fileId: string
  size: number
  sha256: string
  createdAt: string
  /** Replicas on alive keepers. */
  replicas: number
  target: number
}

export interface ListResponse {
  files: FileSummary[]
}

/** A keeper found its replica corrupt (or missing) and dropped it. */
export interface CorruptReport {
  keeperId: string
  fileId: string
}

/** A client read bytes that did not match; it names a replica it read from. */
export interface SuspectReport {
  keeperId: string
  fileId: string
}

export interface SuspectVerdict {
  keeper: string
  corrupt: boolean
}

export type FileHealth = 'healthy' | 'under-replicated' | 'over-replicated' | 'missing'

export interface FsckFile {
  name: string
  fileId: string
  size: number
  alive: number
  target: number
  /** Replicas recorded on keepers that are dead now. */
  dead: number
  /** Corrupt replicas found since the file was last at its target. */
  corrupt: number
  health: FileHealth
}

export interface FsckReport {
  status: 'healthy' | 'under-replicated' | 'missing'
  files: FsckFile[]
  summary: {files: number; healthy: number; underReplicated: number; overReplicated: number; missing: number; corrupt: number; aliveKeepers: number; keepers: number}
}

export interface VerifyResult {
  ok: boolean
  sha256: string
  size: number
}

// ---- keeper ----------------------------------------------------------------------------------

/** The master asks a keeper to pull a copy of a file from another keeper. */
export interface ReplicateRequest extends InventoryItem {
  source: string
}

export interface StoredFile extends InventoryItem {
  path: string
}

// ---- JSON schemas (fastify validates bodies and params with these) ----------------------------

const name = {type: 'string', minLength: 1, maxLength: MAX_NAME_BYTES} as const
const id = {type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$'} as const
const sha256 = {type: 'string', pattern: '^[0-9a-f]{64}$'} as const
const bytes = {type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER} as const
const url = {type: 'string', pattern: '^https?://[^\\s]+$', maxLength: 2048} as const

const keeperStats = {
  url,
  freeBytes: bytes,
  storedBytes: bytes,
  fileCount: bytes,
  activeTransfers: bytes,
} as const
const keeperStatsRequired = ['url', 'freeBytes', 'storedBytes', 'fileCount', 'activeTransfers'] as const

const path = {type: 'string', minLength: 1, maxLength: 4096} as const
const inventoryItem = {
  type: 'object',
  additionalProperties: false,
  required: ['fileId', 'name', 'size', 'sha256'],
  properties: {fileId: id, name, size: bytes, sha256},
} as const
const storedFile = {
  ...inventoryItem,
  required: [...inventoryItem.required, 'path'],
  properties: {...inventoryItem.properties, path},
} as const

export const schemas = {
  nameParams: {
    type: 'object',
    required: ['name'],
    properties: {name: {type: 'string'}},
  },
  idParams: {
    type: 'object',
    required: ['id'],
    properties: {id},
  },
  register: {
    type: 'object',
    additionalProperties: false,
    required: [...keeperStatsRequired, 'inventory'],
    properties: {...keeperStats, id, inventory: {type: 'array', items: storedFile}},
  },
  heartbeat: {
    type: 'object',
    additionalProperties: false,
    required: keeperStatsRequired,
    properties: {...keeperStats, deleted: {type: 'array', items: id, maxItems: 100_000}},
  },
  upload: {
    type: 'object',
    additionalProperties: false,
    required: ['name', 'size', 'sha256'],
    properties: {name, size: bytes, sha256, exclude: {type: 'array', items: id, maxItems: 1024}},
  },
  commit: {
    type: 'object',
    additionalProperties: false,
    required: ['keeperId', 'name', 'size', 'sha256', 'path'],
    properties: {keeperId: id, name, size: bytes, sha256, path},
  },
  replicaReport: {
    type: 'object',
    additionalProperties: false,
    required: ['keeperId', 'fileId', 'size', 'sha256', 'path'],
    properties: {keeperId: id, fileId: id, size: bytes, sha256, path},
  },
  fileReport: {
    type: 'object',
    additionalProperties: false,
    required: ['keeperId', 'fileId'],
    properties: {keeperId: id, fileId: id},
  },
  replicate: {
    type: 'object',
    additionalProperties: false,
    required: ['fileId', 'name', 'size', 'sha256', 'source'],
    properties: {...inventoryItem.properties, source: url},
  },
} as const
