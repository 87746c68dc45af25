// An upload by the protocol whose body the test holds back half-way: a transfer that is surely in
// flight, for as long as the test wants, to see what a stop does to it.

import {createHash, randomBytes} from 'node:crypto'

import {GRANT_HEADER} from '../../src/lib/grants.js'
import {bearer, json} from './cluster.js'

const MiB = 1024 * 1024

export interface HeldUpload {
  name: string
  sha256: string
  /** The keeper the master sent it to. */
  keeper: {id: string; url: string}
  /** Sends the rest of the body. */
  release(): void
  /** The keeper's answer, or the error if the connection was cut. */
  response: Promise<{status: number; body: unknown} | {error: Error}>
}

/**
 * Asks the master for a ticket (showing `token`) and sends the first MiB of `size` random bytes to
 * the keeper it names, with the ticket's grant. `replace`: the upload replaces a file of the name (put --force).
 */
export async function holdUpload(masterUrl: string, token: string, name: string, size = 4 * MiB, options: {replace?: boolean} = {}): Promise<HeldUpload> {
  const body = randomBytes(size)
  const sha256 = createHash('sha256').update(body).digest('hex')
  const ticket = await json<{uploadId: string; keeper: {id: string; url: string}; grant?: string}>(`${masterUrl}/uploads`, {
    method: 'POST',
    headers: {'content-type': 'application/json', ...bearer(token)},
    body: JSON.stringify({name, size, sha256, ...(options.replace ? {replace: true} : {})}),
  })
  if (ticket.status !== 201) throw new Error(`no upload ticket: ${ticket.status} ${JSON.stringify(ticket.body)}`)
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  const response = fetch(`${ticket.body.keeper.url}/files/${encodeURIComponent(name)}?upload=${ticket.body.uploadId}`, {
    method: 'PUT',
    headers: {'x-dfs-sha256': sha256, 'x-dfs-size': String(size), 'content-type': 'application/octet-stream', ...(ticket.body.grant ? {[GRANT_HEADER]: ticket.body.grant} : {})},
    body: new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(body.subarray(0, MiB))
        await released
        controller.enqueue(body.subarray(MiB))
        controller.close()
      },
    }),
    duplex: 'half',
  } as RequestInit).then(
    async (answer) => ({status: answer.status, body: await answer.json().catch(() => undefined)}),
    (error: Error) => ({error}),
  )
  return {name, sha256, keeper: ticket.body.keeper, release, response}
}
