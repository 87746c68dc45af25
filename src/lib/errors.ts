// One catalogue of every error dfs can report (after fastify's lib/errors.js): servers answer
// `{error: code, message}` with the status below, and the CLI prints the message and exits non-zero.

export const ERRORS = {
  DFS_ERR_BAD_REQUEST: {status: 400, exit: 2},
  DFS_ERR_INVALID_NAME: {status: 400, exit: 2},
  DFS_ERR_UNAUTHENTICATED: {status: 401, exit: 8},
  DFS_ERR_FORBIDDEN: {status: 403, exit: 9},
  DFS_ERR_REQUEST_TIMEOUT: {status: 408, exit: 1},
  DFS_ERR_BODY_TOO_LARGE: {status: 413, exit: 2},
  DFS_ERR_URI_TOO_LONG: {status: 414, exit: 2},
  DFS_ERR_UNSUPPORTED_MEDIA_TYPE: {status: 415, exit: 2},
  DFS_ERR_HEADERS_TOO_LARGE: {status: 431, exit: 2},
  DFS_ERR_SIZE_MISMATCH: {status: 400, exit: 1},
  DFS_ERR_CHECKSUM_MISMATCH: {status: 422, exit: 1},
  DFS_ERR_NOT_FOUND: {status: 404, exit: 3},
  DFS_ERR_UNKNOWN_KEEPER: {status: 404, exit: 1},
  DFS_ERR_UNKNOWN_UPLOAD: {status: 410, exit: 1},
  DFS_ERR_EXISTS: {status: 409, exit: 4},
  DFS_ERR_STALE_REPLICA: {status: 409, exit: 1},
  DFS_ERR_KEEPER_IN_USE: {status: 409, exit: 1},
  DFS_ERR_TOO_MANY_UPLOADS: {status: 429, exit: 5},
  DFS_ERR_RANGE_NOT_SATISFIABLE: {status: 416, exit: 1},
  DFS_ERR_NO_KEEPERS: {status: 503, exit: 5},
  DFS_ERR_INSUFFICIENT_STORAGE: {status: 507, exit: 5},
  DFS_ERR_KEEPER_UNREACHABLE: {status: 502, exit: 6},
  DFS_ERR_MASTER_UNREACHABLE: {status: 502, exit: 6},
  DFS_ERR_BAD_RESPONSE: {status: 502, exit: 6},
  DFS_ERR_LOCAL_FILE: {status: 400, exit: 2},
  DFS_ERR_INTEGRITY: {status: 502, exit: 7},
  DFS_ERR_SHUTTING_DOWN: {status: 503, exit: 1},
  DFS_ERR_RECOVERING: {status: 503, exit: 5},
  DFS_ERR_NOT_READY: {status: 503, exit: 5},
  DFS_ERR_INTERNAL: {status: 500, exit: 1},
} as const satisfies Record<string, {status: number; exit: number}>

export type ErrorCode = keyof typeof ERRORS

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERRORS, code)
}

/** The one error type dfs throws on purpose: a stable code, a one-line message, the cause kept. */
export class DfsError extends Error {
  readonly code: ErrorCode

  constructor(code: ErrorCode, message: string, options?: {cause?: unknown}) {
    super(message, options)
    this.name = 'DfsError'
    this.code = code
  }

  get status(): number {
    return ERRORS[this.code].status
  }

  get exitCode(): number {
    return ERRORS[this.code].exit
  }

  toJSON(): {error: ErrorCode; message: string} {
    return {error: this.code, message: this.message}
  }
}

// Statuses whose meaning does not depend on who raised them, with their catalogue code.
const GENERIC_STATUS: Partial<Record<number, ErrorCode>> = {
  400: 'DFS_ERR_BAD_REQUEST',
  401: 'DFS_ERR_UNAUTHENTICATED',
  403: 'DFS_ERR_FORBIDDEN',
  404: 'DFS_ERR_NOT_FOUND',
  408: 'DFS_ERR_REQUEST_TIMEOUT',
  413: 'DFS_ERR_BODY_TOO_LARGE',
  414: 'DFS_ERR_URI_TOO_LONG',
  415: 'DFS_ERR_UNSUPPORTED_MEDIA_TYPE',
  416: 'DFS_ERR_RANGE_NOT_SATISFIABLE',
  431: 'DFS_ERR_HEADERS_TOO_LARGE',
}

/**
 * The code for an error that carries only an HTTP status (fastify's, a library's); answering with
 * that code's own status keeps code and status in agreement: an odd 4xx becomes a plain 400.
 */
export function codeForStatus(status: number): ErrorCode {
  return GENERIC_STATUS[status] ?? (status >= 400 && status < 500 ? 'DFS_ERR_BAD_REQUEST' : 'DFS_ERR_INTERNAL')
}

/** The error a server described in its `{error, message}` body; undefined if the body is not one. */
export function catalogueError(body: unknown): DfsError | undefined {
  if (body && typeof body === 'object') {
    const {error, message} = body as {error?: unknown; message?: unknown}
    if (isErrorCode(error) && typeof message === 'string') return new DfsError(error, message)
  }

  return undefined
}

/** Any thrown value as a DfsError: ours pass unchanged, anything else is an internal error with its message. */
export function asDfsError(error: unknown): DfsError {
  return error instanceof DfsError ? error : new DfsError('DFS_ERR_INTERNAL', String((error as Error).message ?? error), {cause: error})
}
