// The one source of truth for the HTTP protocol between client, master and keepers: every route
// of both servers, declared once with its method, path and the TypeBox schemas of its path
// parameters, query string, headers, body and answer. The servers validate requests with these
// schemas (http-routes.ts), the peer client validates answers with them (peer-client.ts), and the
// TypeScript types are derived from them (Static). docs/protocol.md describes the same routes for people.

import type {Readable} from 'node:stream'

import {Type, type Static, type TSchema} from '#typebox'

import {GRANT_HEADER} from './grants.js'
import {MAX_NAME_BYTES} from './names.js'

/** Header in which a client announces the sha256 of the body it uploads (and a keeper names the one it serves). */
export const SHA256_HEADER = 'x-dfs-sha256'
/** Header in which a client announces the size of the body it uploads. */
export const SIZE_HEADER = 'x-dfs-size'
/** Header in which a keeper names the generation of the file it serves. */
export const FILE_ID_HEADER = 'x-dfs-file-id'
/** Header in which every dfs server names its role, so that a client that reached the wrong one says so. */
export const ROLE_HEADER = 'x-dfs-role'

/** The most keepers a client may ask the master to leave out of an upload (it tried them already). */
export const MAX_EXCLUDE = 64
/**
 * Header of a one-pass upload's bytes (`PUT /uploads/:id`) naming the keepers of its write pipeline
 * after the receiver, in order: JSON, a `Pipeline`. The receiver forwards the bytes to the first.
 */
export const PIPELINE_HEADER = 'x-dfs-pipeline'
/** Header of bytes a keeper forwards down a write pipeline: the forwarding keeper's id (its receiver holds a copy, not the upload). */
export const UPSTREAM_HEADER = 'x-dfs-upstream'
/** The most keepers after the first in a write pipeline (the master's replica target is at most this plus one). */
export const MAX_PIPELINE = 15

// ---- the values every body is made of ---------------------------------------------------------

const Name = Type.String({minLength: 1, maxLength: MAX_NAME_BYTES})
const Id = Type.String({pattern: '^[A-Za-z0-9_-]{1,64}$'})
const Sha256 = Type.String({pattern: '^[0-9a-f]{64}$'})
const Bytes = Type.Integer({minimum: 0, maximum: Number.MAX_SAFE_INTEGER})
const Url = Type.String({pattern: '^https?://[^\\s]+$', maxLength: 2048})
/** A grant (grants.ts), as it travels in a body. */
const GrantToken = Type.String({minLength: 1, maxLength: 4096})
/** A zone's name, as `dfs keeper --zone` takes it. */
export const ZONE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/
const Zone = Type.String({pattern: ZONE_PATTERN.source})
/** A keeper started without --zone is in this one: a cluster without zones is one zone. */
export const DEFAULT_ZONE = 'default'
/** A byte count in a header. */
const ByteCount = Type.String({pattern: '^[0-9]{1,16}$'})

// Request bodies keep only what they declare: fastify's ajv removes undeclared properties before a
// handler runs, so no handler can act on a field the protocol does not have. Answers may carry more
// than declared, so that a newer server's extra fields do not break an older client.
const closed = {additionalProperties: false} as const

export const ErrorBody = Type.Object({error: Type.String(), message: Type.String()})
export type ErrorBody = Static<typeof ErrorBody>

// ---- master: keepers -------------------------------------------------------------------------

/**
 * One stored file as a keeper reports it (like an HDFS block report entry). `createdAt` (ms since
 * the epoch) is when this generation was uploaded: a master rebuilding its table (--recover) keeps
 * the newest generation of a name. Descriptions written before it existed have none.
 */
export const InventoryItem = Type.Object({fileId: Id, name: Name, size: Bytes, sha256: Sha256, createdAt: Type.Optional(Bytes)}, closed)
export type InventoryItem = Static<typeof InventoryItem>

const keeperStats = {url: Url, freeBytes: Bytes, storedBytes: Bytes, fileCount: Bytes, activeTransfers: Bytes}

export const KeeperStats = Type.Object(keeperStats, closed)
export type KeeperStats = Static<typeof KeeperStats>

export const RegisterRequest = Type.Object(
  {
    ...keeperStats,
    /** The id this keeper was given before; absent on its very first start. */
    id: Type.Optional(Id),
    /** Its failure domain (DEFAULT_ZONE when absent). */
    zone: Type.Optional(Zone),
    inventory: Type.Array(InventoryItem),
    /**
     * Uploads on its disk whose commit it never heard answered (its process died, or the master
     * did not answer): not files yet. The master answers which of them it recorded (`recorded`).
     */
    undecided: Type.Optional(Type.Array(InventoryItem)),
  },
  closed,
)
export type RegisterRequest = Static<typeof RegisterRequest>

/** A replica a keeper must delete: the file was removed, or this copy is surplus or stale. */
export const DeleteCommand = Type.Object({fileId: Id, name: Type.String()})
export type DeleteCommand = Static<typeof DeleteCommand>

/** A replica whose file the master renamed (dfs mv): the keeper rewrites its description to the new name. */
export const RenameCommand = Type.Object({fileId: Id, name: Name})
export type RenameCommand = Static<typeof RenameCommand>

export const RegisterResponse = Type.Object({
  id: Id,
  deletes: Type.Array(DeleteCommand),
  /** The file ids of the request's `undecided` uploads that the table records on this keeper; the others are to be removed. */
  recorded: Type.Optional(Type.Array(Id)),
})
export type RegisterResponse = Static<typeof RegisterResponse>

export const HeartbeatRequest = Type.Object(
  {
    ...keeperStats,
    /** Delete orders carried out since the last heartbeat (file ids): the master stops sending them. */
    deleted: Type.Optional(Type.Array(Id, {maxItems: 100_000})),
    /** Rename orders carried out since the last heartbeat: the master stops sending each while its name is current. */
    renamed: Type.Optional(Type.Array(RenameCommand, {maxItems: 100_000})),
  },
  closed,
)
export type HeartbeatRequest = Static<typeof HeartbeatRequest>

export const HeartbeatResponse = Type.Object({deletes: Type.Array(DeleteCommand), renames: Type.Optional(Type.Array(RenameCommand))})
export type HeartbeatResponse = Static<typeof HeartbeatResponse>

export const KeeperInfo = Type.Object({
  id: Type.String(),
  url: Type.String(),
  alive: Type.Boolean(),
  lastHeartbeat: Type.Union([Type.String(), Type.Null()]),
  files: Bytes,
  storedBytes: Bytes,
  freeBytes: Bytes,
  activeTransfers: Bytes,
  zone: Type.String(),
  /** Set by `dfs keeper drain`: draining while its files are copied away, drained once none is needed there. */
  drain: Type.Union([Type.Literal('draining'), Type.Literal('drained'), Type.Null()]),
})
export type KeeperInfo = Static<typeof KeeperInfo>

/** `replicas`: the replicas the table recorded on it, now forgotten. */
export const ForgottenKeeper = Type.Object({id: Id, forgotten: Type.Literal(true), replicas: Bytes})
export type ForgottenKeeper = Static<typeof ForgottenKeeper>

export const StatusResponse = Type.Object({keepers: Type.Array(KeeperInfo)})
export type StatusResponse = Static<typeof StatusResponse>

// ---- master: files ---------------------------------------------------------------------------

export const UploadRequest = Type.Object(
  {
    name: Name,
    size: Bytes,
    /** Absent for a one-pass upload: the client hashes while it sends and names the sha256 when it seals. */
    sha256: Type.Optional(Sha256),
    /** Keepers the client already failed to upload to. */
    exclude: Type.Optional(Type.Array(Id, {maxItems: MAX_EXCLUDE})),
    /** `put --force`: a file of this name is replaced when this upload commits (else the name must be free). */
    replace: Type.Optional(Type.Boolean()),
    /** A one-pass upload's client asks for a write pipeline: the keepers of the other replicas, which get the bytes as they pass. */
    pipeline: Type.Optional(Type.Boolean()),
  },
  closed,
)
export type UploadRequest = Static<typeof UploadRequest>

/** A keeper of a write pipeline after the first, with (under a key) its own `write` grant for the upload. */
export const PipelineKeeper = Type.Object({id: Id, url: Url, grant: Type.Optional(GrantToken)}, closed)
export type PipelineKeeper = Static<typeof PipelineKeeper>
export const Pipeline = Type.Array(PipelineKeeper, {maxItems: MAX_PIPELINE})
export type Pipeline = Static<typeof Pipeline>

/**
 * `grant`: the `write` grant the keeper asks for, when the cluster has a key. `pipeline` (asked for,
 * with replicas > 1): the keepers that hold the other replicas as the bytes pass, in order.
 */
export const UploadTicket = Type.Object({uploadId: Id, keeper: Type.Object({id: Id, url: Url}), grant: Type.Optional(GrantToken), pipeline: Type.Optional(Pipeline)})
export type UploadTicket = Static<typeof UploadTicket>

/** The sha256 a one-pass upload's client computed while it sent the bytes (its seal). */
export const SealRequest = Type.Object({sha256: Sha256}, closed)
export type SealRequest = Static<typeof SealRequest>

/** A pipeline keeper's `write` grant naming the sealed sha256, with which the keeper before it seals it. */
export const PipelineSeal = Type.Object({id: Id, grant: GrantToken}, closed)
export type PipelineSeal = Static<typeof PipelineSeal>

/**
 * `grant`: a `write` grant naming the sealed sha256, which the keeper asks for to seal (with a
 * cluster key); `pipeline`: one such grant for each keeper of the ticket's pipeline.
 */
export const SealTicket = Type.Object({grant: Type.Optional(GrantToken), pipeline: Type.Optional(Type.Array(PipelineSeal, {maxItems: MAX_PIPELINE}))})
export type SealTicket = Static<typeof SealTicket>

/** The most items one batch of tickets (POST /uploads/batch) or of commits (POST /uploads/commits) may hold. */
export const MAX_UPLOAD_BATCH = 250

export const UploadBatchRequest = Type.Object({uploads: Type.Array(UploadRequest, {minItems: 1, maxItems: MAX_UPLOAD_BATCH})}, closed)
export type UploadBatchRequest = Static<typeof UploadBatchRequest>

/** An item of a batch that failed on its own: the error its single route would answer. */
export const BatchMiss = Type.Object({error: Type.String(), message: Type.String()})
export type BatchMiss = Static<typeof BatchMiss>

/** `tickets`: one per upload asked for, in the same order: its ticket, or the error POST /uploads would answer. */
export const UploadBatchTickets = Type.Object({tickets: Type.Array(Type.Union([UploadTicket, BatchMiss]))})
export type UploadBatchTickets = Static<typeof UploadBatchTickets>

/** The seal of held bytes at a keeper: the sha256, and the seal grants of the pipeline's keepers after it (passed on down the chain). */
export const KeeperSealRequest = Type.Object({sha256: Sha256, pipeline: Type.Optional(Type.Array(PipelineSeal, {maxItems: MAX_PIPELINE}))}, closed)
export type KeeperSealRequest = Static<typeof KeeperSealRequest>

// What a keeper read of a stored ISO-BMFF file (mp4, mov, m4a…): display only. It is the keeper's
// claim, so the master holds it to these bounds and nothing more. `width`, `height` and `videoCodec`
// are null without a video track, `audioCodec` without an audio one, `bitrate` (bits per second,
// the whole file's size over its duration) when the duration is 0. `fastStart`: the `moov` box comes
// before the media data, so a browser can start playing from the first bytes.
const Codec = Type.String({pattern: '^[A-Za-z0-9._+-]{1,64}$'})
const Pixels = Type.Integer({minimum: 0, maximum: 65_535})
const mediaInfo = {
  container: Type.String({pattern: '^[a-z0-9]{1,8}$'}),
  durationSeconds: Type.Number({minimum: 0, maximum: 1e9}),
  width: Type.Union([Pixels, Type.Null()]),
  height: Type.Union([Pixels, Type.Null()]),
  videoCodec: Type.Union([Codec, Type.Null()]),
  audioCodec: Type.Union([Codec, Type.Null()]),
  bitrate: Type.Union([Type.Integer({minimum: 0, maximum: 1e12}), Type.Null()]),
  fastStart: Type.Boolean(),
}
export const MediaInfo = Type.Object(mediaInfo)
export type MediaInfo = Static<typeof MediaInfo>

export const CommitRequest = Type.Object(
  {
    keeperId: Id,
    /** The name the keeper received the bytes under; it must be the ticket's. */
    name: Name,
    size: Bytes,
    sha256: Sha256,
    /** What the keeper read of the file if it is an mp4 (or other ISO-BMFF) file. */
    media: Type.Optional(Type.Object(mediaInfo, closed)),
    /** Keepers of the ticket's pipeline that hold these very bytes and are being sealed next: copies under way. */
    pipeline: Type.Optional(Type.Array(Id, {maxItems: MAX_PIPELINE})),
  },
  closed,
)
export type CommitRequest = Static<typeof CommitRequest>

/** One upload of a batch of commits (POST /uploads/commits), as POST /uploads/:id/commit takes it. */
export const BatchedCommit = Type.Object({uploadId: Id, ...CommitRequest.properties}, closed)
export type BatchedCommit = Static<typeof BatchedCommit>

/** `keeperId`: the keeper that sends the batch; each of its commits names it too. */
export const CommitBatchRequest = Type.Object({keeperId: Id, commits: Type.Array(BatchedCommit, {minItems: 1, maxItems: MAX_UPLOAD_BATCH})}, closed)
export type CommitBatchRequest = Static<typeof CommitBatchRequest>

/** A commit of a batch the master recorded. */
export const CommitDone = Type.Object({uploadId: Id, fileId: Id})
export type CommitDone = Static<typeof CommitDone>

/** `commits`: one per commit sent, in the same order: recorded, or the error POST /uploads/:id/commit would answer. */
export const CommitBatchAnswer = Type.Object({commits: Type.Array(Type.Union([CommitDone, Type.Object({uploadId: Id, ...BatchMiss.properties})]))})
export type CommitBatchAnswer = Static<typeof CommitBatchAnswer>

export const ReplicaReport = Type.Object(
  {
    keeperId: Id,
    fileId: Id,
    size: Bytes,
    sha256: Sha256,
    /** The `replicate-from` grant of the copy order: a master restarted since the order still knows it ordered this copy. */
    grant: Type.Optional(GrantToken),
  },
  closed,
)
export type ReplicaReport = Static<typeof ReplicaReport>

/** Copies in one copy order (POST /replicate/batch), and so in one batched copy report. */
export const MAX_BATCH_COPIES = 512

/** One copy of a batched copy report: ReplicaReport's fields for one file, with its name. */
export const ReportedCopy = Type.Object({fileId: Id, name: Name, size: Bytes, sha256: Sha256, grant: Type.Optional(GrantToken)}, closed)
export type ReportedCopy = Static<typeof ReportedCopy>

/** A keeper reports many copies it now holds durably (the copies of one batched order) in one request. */
export const ReplicaBatchReport = Type.Object({keeperId: Id, copies: Type.Array(ReportedCopy, {minItems: 1, maxItems: MAX_BATCH_COPIES})}, closed)
export type ReplicaBatchReport = Static<typeof ReplicaBatchReport>

/** The master's word on one reported copy: counted, or refused with a catalogue error (as POST /files/:name/replicas would answer it). */
export const ReportedCopyAnswer = Type.Object({fileId: Id, counted: Type.Boolean(), error: Type.Optional(Type.String()), message: Type.Optional(Type.String())})
export type ReportedCopyAnswer = Static<typeof ReportedCopyAnswer>

/** One answer per reported copy, in the report's order. */
export const ReplicaBatchAnswer = Type.Object({copies: Type.Array(ReportedCopyAnswer)})
export type ReplicaBatchAnswer = Static<typeof ReplicaBatchAnswer>

// `url` is empty when the replica's keeper is no longer registered. `grant`: a `read` grant for
// this replica, in a client's look-up (GET /files/:name) when the cluster has a key.
// `zone` is empty, too, for an unregistered keeper; `draining`: its keeper is being drained (the
// replica serves reads but does not count toward the target).
export const ReplicaInfo = Type.Object({
  keeper: Id,
  url: Type.String(),
  alive: Type.Boolean(),
  zone: Type.String(),
  draining: Type.Boolean(),
  grant: Type.Optional(GrantToken),
})
export type ReplicaInfo = Static<typeof ReplicaInfo>

/**
 * `single-zone`: at its count, but every counted replica sits in one zone while keepers of more
 * zones could hold one (losing that zone loses the file). Worse states win: missing, then
 * under-replicated, then single-zone, then over-replicated.
 */
export const FileHealth = Type.Union([
  Type.Literal('healthy'),
  Type.Literal('under-replicated'),
  Type.Literal('single-zone'),
  Type.Literal('over-replicated'),
  Type.Literal('missing'),
])
export type FileHealth = Static<typeof FileHealth>

// `media`: null for a file that is not an mp4 (or other ISO-BMFF) file a keeper could read. This
// master always sends it; a client does without it (it only shows it).
const fileDescription = {name: Name, fileId: Id, size: Bytes, sha256: Sha256, createdAt: Type.String(), media: Type.Optional(Type.Union([MediaInfo, Type.Null()]))}

export const FileInfo = Type.Object({...fileDescription, target: Bytes, health: FileHealth, replicas: Type.Array(ReplicaInfo)})
export type FileInfo = Static<typeof FileInfo>

/** The most names one look-up (POST /lookup) may ask for. */
export const MAX_LOOKUP_NAMES = 1000

export const LookupRequest = Type.Object({names: Type.Array(Name, {minItems: 1, maxItems: MAX_LOOKUP_NAMES})}, closed)
export type LookupRequest = Static<typeof LookupRequest>

/** A name of a look-up that has no file to show: the error GET /files/:name would answer for it. */
export const LookupMiss = Type.Object({name: Type.String(), error: Type.String(), message: Type.String()})
export type LookupMiss = Static<typeof LookupMiss>

/** `files`: one entry per name asked for, in the same order: the file as GET /files/:name answers it, or the miss. */
export const LookupResponse = Type.Object({files: Type.Array(Type.Union([FileInfo, LookupMiss]))})
export type LookupResponse = Static<typeof LookupResponse>

export const FileSummary = Type.Object({
  ...fileDescription,
  /** Replicas on alive keepers. */
  replicas: Bytes,
  target: Bytes,
  health: FileHealth,
  /** The keepers the table records a replica on, alive or not, by id. */
  keepers: Type.Array(Type.String()),
})
export type FileSummary = Static<typeof FileSummary>

export const ListResponse = Type.Object({
  files: Type.Array(FileSummary),
  /** With `limit`: the name to pass as `after` for the next page, absent on the last one. */
  next: Type.Optional(Name),
  /** With `limit` and `total=true`: how many files match `prefix` and `search`, over every page. */
  total: Type.Optional(Bytes),
})
export type ListResponse = Static<typeof ListResponse>

/** The most files one page of `GET /files?limit=` holds. */
export const MAX_PAGE_SIZE = 1000

/**
 * A page of the listing, for a dashboard over 100,000 files: names starting with `prefix` and
 * containing `search` (case-insensitive for ASCII), after the name `after`, at most `limit` of them.
 * Without `limit`, every matching file. `total`: with `limit`, count every match too (a count of the
 * whole range: asked by the page that shows it, not by a walk over every page).
 */
export const ListQuery = Type.Object({
  prefix: Type.Optional(Type.String({maxLength: 1024})),
  search: Type.Optional(Type.String({maxLength: 1024})),
  after: Type.Optional(Type.String({maxLength: 1024})),
  limit: Type.Optional(Type.Integer({minimum: 1, maximum: MAX_PAGE_SIZE})),
  total: Type.Optional(Type.Boolean()),
})
export type ListQuery = Static<typeof ListQuery>

/** The longest life a `dfs url` link may ask for, in seconds: a grant in a URL should not live long. */
export const MAX_URL_TTL_SECONDS = 24 * 60 * 60

/** A URL that reads a file from one keeper with a read grant in its query string, needing no other credential. */
export const FileUrl = Type.Object({url: Type.String(), keeper: Id, expiresAt: Type.Union([Type.String(), Type.Null()])})
export type FileUrl = Static<typeof FileUrl>

export const RemovedFile = Type.Object({name: Name, fileId: Id})
export type RemovedFile = Static<typeof RemovedFile>

/** A keeper found its replica corrupt (or missing) and dropped it. */
export const CorruptReport = Type.Object({keeperId: Id, fileId: Id}, closed)
export type CorruptReport = Static<typeof CorruptReport>

export const CorruptAnswer = Type.Object({dropped: Type.Boolean()})
export type CorruptAnswer = Static<typeof CorruptAnswer>

/** A client read bytes that did not match; it names a replica it read from. */
export const SuspectReport = CorruptReport
export type SuspectReport = CorruptReport

export const SuspectVerdict = Type.Object({keeper: Id, corrupt: Type.Boolean()})
export type SuspectVerdict = Static<typeof SuspectVerdict>

export const FsckFile = Type.Object({
  name: Name,
  fileId: Id,
  size: Bytes,
  alive: Bytes,
  target: Bytes,
  /** Replicas recorded on keepers that are dead now. */
  dead: Bytes,
  /** Corrupt replicas found since the file was last at its target. */
  corrupt: Bytes,
  /** Alive replicas on draining keepers: readable, not counted in `alive`. */
  draining: Bytes,
  /** The distinct zones of the counted replicas, sorted. */
  zones: Type.Array(Type.String()),
  health: FileHealth,
})
export type FsckFile = Static<typeof FsckFile>

export const SetAsideReplica = Type.Object({
  fileId: Id,
  keeperId: Id,
  name: Name,
  size: Bytes,
  sha256: Sha256,
  createdAt: Type.Optional(Bytes),
  reason: Type.String(),
})
export type SetAsideReplica = Static<typeof SetAsideReplica>

export const FsckReport = Type.Object({
  status: Type.Union([Type.Literal('healthy'), Type.Literal('under-replicated'), Type.Literal('single-zone'), Type.Literal('missing')]),
  files: Type.Array(FsckFile),
  summary: Type.Object({
    files: Bytes,
    healthy: Bytes,
    underReplicated: Bytes,
    overReplicated: Bytes,
    singleZone: Bytes,
    missing: Bytes,
    corrupt: Bytes,
    aliveKeepers: Bytes,
    keepers: Bytes,
  }),
  /** The master is rebuilding its table (--recover) and knows no file yet. */
  recovering: Type.Optional(Type.Boolean()),
  /** Replicas a rebuild of the table found and did not use, and why; their keepers keep them. */
  setAside: Type.Optional(Type.Array(SetAsideReplica)),
})
export type FsckReport = Static<typeof FsckReport>

// ---- master: client tokens -------------------------------------------------------------------

/** Ids of client tokens (`jti`), as `dfs token create` prints them and `dfs token revoke` names them. */
export const TOKEN_ID = /^[A-Za-z0-9_-]{1,64}$/
/** A client token's id (its `jti`), as `dfs token create` prints it. */
export const TokenId = Type.String({pattern: TOKEN_ID.source})

export const RevokeTokenRequest = Type.Object({id: TokenId}, closed)
export type RevokeTokenRequest = Static<typeof RevokeTokenRequest>

/** `newly` is false if the token had been revoked before. */
export const RevokeTokenResponse = Type.Object({id: TokenId, revoked: Type.Literal(true), newly: Type.Boolean()})
export type RevokeTokenResponse = Static<typeof RevokeTokenResponse>

// ---- keeper ----------------------------------------------------------------------------------

/** The master asks a keeper to pull a copy of a file from another keeper. */
export const ReplicateRequest = Type.Object(
  {
    ...InventoryItem.properties,
    source: Url,
    /** With a cluster key: the master's `replicate-from` grant for the source keeper, which the puller shows it. */
    grant: Type.Optional(GrantToken),
  },
  closed,
)
export type ReplicateRequest = Static<typeof ReplicateRequest>

/** Many copies for one keeper to pull (the master's batched copy order), each with its own grant. */
export const ReplicateBatchRequest = Type.Object({copies: Type.Array(ReplicateRequest, {minItems: 1, maxItems: MAX_BATCH_COPIES})}, closed)
export type ReplicateBatchRequest = Static<typeof ReplicateBatchRequest>

/** A keeper's word on one copy of a batch: stored (and counted by the master), or failed with a catalogue error. */
export const ReplicatedCopy = Type.Object({fileId: Id, stored: Type.Boolean(), error: Type.Optional(Type.String()), message: Type.Optional(Type.String())})
export type ReplicatedCopy = Static<typeof ReplicatedCopy>

/** One answer per copy, in the order's order. */
export const ReplicateBatchAnswer = Type.Object({copies: Type.Array(ReplicatedCopy)})
export type ReplicateBatchAnswer = Static<typeof ReplicateBatchAnswer>

/**
 * The most files one batch read (`POST /files/read`) may name. At their largest (a 255-byte name,
 * a 4 KiB grant) 256 items are ~1.2 MiB of JSON, well inside a server's body limit; the client
 * asks for fewer (BATCH_READ_FILES in get.ts).
 */
export const MAX_BATCH_READ = 256
/** The largest file a batch read serves: what a keeper answers from one buffer (FileStore.readWhole); larger ones are GETs. */
export const MAX_BATCH_READ_SIZE = 1024 * 1024
/** The media type of a batch read's answer: frames (docs/protocol.md), not JSON. */
export const FRAMES_TYPE = 'application/x-dfs-frames'

/**
 * One file of a batch read: its name and generation, and the read grant that a GET of it would
 * show (none in a cluster without a key).
 */
export const BatchReadItem = Type.Object({name: Type.String(), fileId: Id, grant: Type.Optional(GrantToken)}, closed)
export type BatchReadItem = Static<typeof BatchReadItem>

export const BatchReadRequest = Type.Object({files: Type.Array(BatchReadItem, {minItems: 1, maxItems: MAX_BATCH_READ})}, closed)
export type BatchReadRequest = Static<typeof BatchReadRequest>

/**
 * The header of one frame of a batch read's answer (a JSON line): the file as the keeper holds it,
 * followed by exactly `size` bytes, or a catalogue error for a file it does not serve, followed by
 * none.
 */
export const BatchReadFrame = Type.Union([
  Type.Object({fileId: Id, size: Bytes, sha256: Sha256}),
  Type.Object({fileId: Id, error: Type.String(), message: Type.String()}),
])
export type BatchReadFrame = Static<typeof BatchReadFrame>

/** A keeper's answer about a file it stored (an upload) or holds. */
export const StoredAnswer = Type.Object({name: Name, fileId: Id, size: Bytes, sha256: Sha256})
export type StoredAnswer = Static<typeof StoredAnswer>

/**
 * A keeper's answer to a one-pass upload's bytes: held durably in tmp/, not a file until sealed.
 * `sha256`: what the keeper computed. `pipeline`: the keepers after it that hold the bytes too,
 * each with the sha256 it computed, in pipeline order (a keeper cut off ends the list).
 */
export const HeldAnswer = Type.Object({uploadId: Id, size: Bytes, sha256: Sha256, pipeline: Type.Optional(Type.Array(Type.Object({id: Id, sha256: Sha256}), {maxItems: MAX_PIPELINE}))})
export type HeldAnswer = Static<typeof HeldAnswer>

/** A keeper's answer to a seal: the file, and `replicas`: how many are durable and recorded, its own and the pipeline's after it. */
export const SealedAnswer = Type.Object({name: Name, fileId: Id, size: Bytes, sha256: Sha256, replicas: Type.Optional(Type.Integer({minimum: 0}))})
export type SealedAnswer = Static<typeof SealedAnswer>

// `sha256` is empty when the file was missing.
export const VerifyResult = Type.Object({ok: Type.Boolean(), sha256: Type.String(), size: Bytes})
export type VerifyResult = Static<typeof VerifyResult>

// ---- the routes ------------------------------------------------------------------------------

/**
 * One HTTP route of the protocol. File bytes travel raw and streamed, never as JSON: `bytes` says
 * whether they are the request's body (an upload) or the answer's (a download).
 */
export interface Route {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE'
  /** fastify's path syntax: `/files/:name`. */
  readonly url: string
  /** The status of a successful answer; 200 when absent. */
  readonly status?: number
  readonly params?: TSchema
  readonly querystring?: TSchema
  readonly headers?: TSchema
  /** The JSON body. */
  readonly body?: TSchema
  /** The JSON answer. */
  readonly response?: TSchema
  /** Headers a successful answer must carry (checked once per answer, never per chunk). */
  readonly responseHeaders?: TSchema
  readonly bytes?: 'request' | 'response'
}

function route<const R extends Route>(definition: R): R {
  return definition
}

// Names travel as any string; the handlers check them, so that a bad one gets DFS_ERR_INVALID_NAME.
const ByName = Type.Object({name: Type.String()})
const ById = Type.Object({id: Id})
const OfGeneration = Type.Object({fileId: Type.Optional(Id)})

/** `GET /health`: the process answers (for an orchestrator's liveness probe). */
const Alive = Type.Literal('ok')
/** `GET /ready`: the role can do its work; otherwise 503 DFS_ERR_NOT_READY saying why. */
const Ready = Type.Object({status: Type.Literal('ready')})
/** `GET /metrics`: Prometheus text (not JSON), answered as bytes. */
const metricsRoute = route({method: 'GET', url: '/metrics', bytes: 'response'})

export const masterRoutes = {
  health: route({method: 'GET', url: '/health', response: Type.Object({role: Type.Literal('master'), status: Alive})}),
  ready: route({method: 'GET', url: '/ready', response: Ready}),
  metrics: metricsRoute,
  /** Sent by a keeper when it starts, and whenever a heartbeat answers DFS_ERR_UNKNOWN_KEEPER. */
  register: route({method: 'POST', url: '/keepers', body: RegisterRequest, response: RegisterResponse}),
  heartbeat: route({method: 'POST', url: '/keepers/:id/heartbeat', params: ById, body: HeartbeatRequest, response: HeartbeatResponse}),
  keepers: route({method: 'GET', url: '/keepers', response: StatusResponse}),
  /** Admin: copy the keeper's files away, then have it delete them (see docs/architecture.md). Answered at once. */
  drainKeeper: route({method: 'POST', url: '/keepers/:id/drain', params: ById, response: KeeperInfo}),
  /** Admin: forget a dead or drained keeper and its replicas. */
  forgetKeeper: route({method: 'DELETE', url: '/keepers/:id', params: ById, response: ForgottenKeeper}),
  beginUpload: route({method: 'POST', url: '/uploads', status: 201, body: UploadRequest, response: UploadTicket}),
  commitUpload: route({method: 'POST', url: '/uploads/:id/commit', status: 201, params: ById, body: CommitRequest, response: FileInfo}),
  /** Many tickets in one request (`dfs put` of many files); an upload refused is a miss, not a failure of the whole. */
  beginUploads: route({method: 'POST', url: '/uploads/batch', status: 201, body: UploadBatchRequest, response: UploadBatchTickets}),
  /** A keeper's commits of uploads that finished together, each checked and answered on its own. */
  commitUploads: route({method: 'POST', url: '/uploads/commits', body: CommitBatchRequest, response: CommitBatchAnswer}),
  /** A one-pass upload's client names the sha256 it computed while sending; the keeper's commit must match it. */
  sealUpload: route({method: 'POST', url: '/uploads/:id/seal', params: ById, body: SealRequest, response: SealTicket}),
  list: route({method: 'GET', url: '/files', querystring: ListQuery, response: ListResponse}),
  stat: route({method: 'GET', url: '/files/:name', params: ByName, response: FileInfo}),
  remove: route({method: 'DELETE', url: '/files/:name', params: ByName, response: RemovedFile}),
  /** Renames a file in the master's table (dfs mv): no bytes move; answers the file under its new name. */
  move: route({method: 'POST', url: '/files/:name/move', params: ByName, body: Type.Object({to: Type.String()}, closed), response: FileInfo}),
  /** `ttl`: seconds the URL's grant lives (an hour by default). */
  fileUrl: route({
    method: 'GET',
    url: '/files/:name/url',
    params: ByName,
    querystring: Type.Object({ttl: Type.Optional(Type.Integer({minimum: 1, maximum: MAX_URL_TTL_SECONDS}))}),
    response: FileUrl,
  }),
  reportReplica: route({method: 'POST', url: '/files/:name/replicas', params: ByName, body: ReplicaReport, response: FileInfo}),
  /** Many copies of one keeper in one report (those of a batched copy order); each is checked as POST /files/:name/replicas checks one. */
  reportReplicas: route({method: 'POST', url: '/replicas', body: ReplicaBatchReport, response: ReplicaBatchAnswer}),
  reportCorrupt: route({method: 'POST', url: '/files/:name/corrupt', params: ByName, body: CorruptReport, response: CorruptAnswer}),
  suspect: route({method: 'POST', url: '/files/:name/suspect', params: ByName, body: SuspectReport, response: SuspectVerdict}),
  /** `brief`: the status and summary only, no list of files (the dashboard asks it every few seconds). */
  fsck: route({method: 'GET', url: '/fsck', querystring: Type.Object({brief: Type.Optional(Type.Boolean())}), response: FsckReport}),
  revokeToken: route({method: 'POST', url: '/tokens/revoke', body: RevokeTokenRequest, response: RevokeTokenResponse}),
  /** Many files' GET /files/:name in one request (`dfs get` of many names); a name without a file is a miss, not a failure. */
  lookup: route({method: 'POST', url: '/lookup', body: LookupRequest, response: LookupResponse}),
  /** The dashboard's page (docs/operations.md), open to anyone: it holds no data, and asks for a token to show any. */
  dashboard: route({method: 'GET', url: '/', bytes: 'response'}),
  /** The dashboard's scripts and styles, from the package's web/ directory. */
  dashboardAsset: route({method: 'GET', url: '/dashboard/:asset', params: Type.Object({asset: Type.String({pattern: '^[a-z0-9-]{1,64}\\.(js|css|svg)$'})}), bytes: 'response'}),
} as const

export const keeperRoutes = {
  health: route({method: 'GET', url: '/health', response: Type.Object({role: Type.Literal('keeper'), status: Alive, id: Type.String(), url: Type.String()})}),
  ready: route({method: 'GET', url: '/ready', response: Ready}),
  metrics: metricsRoute,
  upload: route({
    method: 'PUT',
    url: '/files/:name',
    status: 201,
    params: ByName,
    querystring: Type.Object({upload: Id}),
    headers: Type.Object({
      [SHA256_HEADER]: Sha256,
      // One of the two is required, and they must agree (checked by the handler).
      [SIZE_HEADER]: Type.Optional(ByteCount),
      [GRANT_HEADER]: Type.Optional(GrantToken),
      'content-length': Type.Optional(Type.String()),
      'content-type': Type.Optional(Type.String()),
    }),
    bytes: 'request',
    response: StoredAnswer,
  }),
  /** Also answers HEAD (fastify adds it), without the bytes. */
  read: route({
    method: 'GET',
    url: '/files/:name',
    params: ByName,
    // `grant`: the read grant in the URL (dfs url), for a browser or curl, which send no header.
    querystring: Type.Object({fileId: Type.Optional(Id), grant: Type.Optional(GrantToken)}),
    headers: Type.Object({
      range: Type.Optional(Type.String()),
      'if-none-match': Type.Optional(Type.String()),
      'if-range': Type.Optional(Type.String()),
      [GRANT_HEADER]: Type.Optional(GrantToken),
    }),
    bytes: 'response',
    responseHeaders: Type.Object({[FILE_ID_HEADER]: Id, [SHA256_HEADER]: Sha256}),
  }),
  /**
   * Many small files in one answer (`dfs get` of many names): a stream of frames, one per file in
   * the request's order, each item authorised as a GET of that file would be (docs/protocol.md).
   */
  readBatch: route({method: 'POST', url: '/files/read', body: BatchReadRequest, bytes: 'response', responseHeaders: Type.Object({'content-type': Type.Literal(FRAMES_TYPE)})}),
  remove: route({
    method: 'DELETE',
    url: '/files/:name',
    params: ByName,
    querystring: OfGeneration,
    response: Type.Object({name: Name, fileId: Id, deleted: Type.Literal(true)}),
  }),
  verify: route({method: 'POST', url: '/files/:name/verify', params: ByName, querystring: OfGeneration, response: VerifyResult}),
  replicate: route({method: 'POST', url: '/replicate', body: ReplicateRequest, response: StoredAnswer}),
  /** Many copies in one order: pulled a few at a time, reported to the master in one request, answered per copy. */
  replicateBatch: route({method: 'POST', url: '/replicate/batch', body: ReplicateBatchRequest, response: ReplicateBatchAnswer}),
  /** A one-pass upload's bytes (no sha256 up front): held, uncommitted, until the client seals them. */
  holdUpload: route({
    method: 'PUT',
    url: '/uploads/:id',
    status: 202,
    params: ById,
    querystring: Type.Object({name: Type.String()}),
    headers: Type.Object({
      [SIZE_HEADER]: Type.Optional(ByteCount),
      [GRANT_HEADER]: Type.Optional(GrantToken),
      // The keepers to forward to (JSON, a Pipeline, checked by the handler) and, from a keeper, who forwards.
      [PIPELINE_HEADER]: Type.Optional(Type.String({maxLength: 12288})),
      [UPSTREAM_HEADER]: Type.Optional(Id),
      'content-length': Type.Optional(Type.String()),
      'content-type': Type.Optional(Type.String()),
    }),
    bytes: 'request',
    response: HeldAnswer,
  }),
  /**
   * Seals a held upload with the client's sha256: stored and committed if it is the keeper's,
   * removed if not; then the keepers after it in its pipeline, by the same route.
   */
  sealUpload: route({method: 'POST', url: '/uploads/:id/seal', status: 201, params: ById, body: KeeperSealRequest, response: SealedAnswer}),
  /** The client gives up a held upload (its seal failed): the bytes go now, not when the grant expires. */
  dropUpload: route({method: 'DELETE', url: '/uploads/:id', params: ById, response: Type.Object({uploadId: Id, dropped: Type.Boolean()})}),
} as const

// ---- what a route's parts are in TypeScript ---------------------------------------------------

type StaticOf<S> = S extends TSchema ? Static<S> : undefined

export type ParamsOf<R extends Route> = StaticOf<R['params']>
export type QueryOf<R extends Route> = StaticOf<R['querystring']>
export type HeadersOf<R extends Route> = StaticOf<R['headers']>
/** The request body: file bytes for an upload, else the JSON value. */
export type BodyOf<R extends Route> = R['bytes'] extends 'request' ? Readable | Buffer : StaticOf<R['body']>
/** The JSON answer; nothing for a route that answers with file bytes. */
export type AnswerOf<R extends Route> = R['bytes'] extends 'response' ? void : StaticOf<R['response']>

// A part the route does not have may be left out, and so may one whose every field is optional.
type Part<K extends string, T> = [T] extends [undefined] ? {[P in K]?: undefined} : {} extends T ? {[P in K]?: T} : {[P in K]: T}

/** What a caller gives to make a request on a route: path parameters, query string, headers, body. */
export type RouteInput<R extends Route> = Part<'params', ParamsOf<R>> & Part<'query', QueryOf<R>> & Part<'headers', HeadersOf<R>> & Part<'body', BodyOf<R>>
