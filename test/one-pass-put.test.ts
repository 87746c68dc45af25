// A large put is hashed while it is sent (one pass): the keeper holds the bytes, fsynced, until the
// client seals them with the sha256 it computed, first at the master, then at the keeper. These
// tests hold it to what that design promises: a corrupt byte in transit never becomes a stored
// file, held bytes are no file until sealed, and only the master's seal grant seals.

import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {readdir} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {GRANT_HEADER} from '../src/lib/grants.js'
import {clusterPerTest, json, randomFile, sha256File, waitFor, type TestCluster} from './helpers/cluster.js'
import {startProxiedKeeper} from './helpers/keeper-proxy.js'

const MiB = 1024 * 1024

/** What a keeper's data dir holds besides its identity: temp files (held uploads) and blobs. */
async function onDisk(dataDir: string): Promise<{tmp: string[]; blobs: string[]}> {
  const files = async (dir: string) => (await readdir(join(dataDir, dir)).catch(() => [])).filter((name) => !name.endsWith('.probe')).sort()
  return {tmp: await files('tmp'), blobs: await files('blobs')}
}

interface Ticket {
  uploadId: string
  keeper: {id: string; url: string}
  grant?: string
}

/** A one-pass ticket from the master: name and size, no sha256. */
async function onePassTicket(cluster: TestCluster, name: string, size: number): Promise<Ticket> {
  const ticket = await cluster.masterJson<Ticket>('/uploads', {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({name, size})})
  assert.equal(ticket.status, 201, JSON.stringify(ticket.body))
  return ticket.body
}

function sendBytes(ticket: Ticket, name: string, body: Buffer) {
  return json<{uploadId: string; size: number; sha256: string}>(`${ticket.keeper.url}/uploads/${ticket.uploadId}?name=${encodeURIComponent(name)}`, {
    method: 'PUT',
    headers: {'content-type': 'application/octet-stream', 'x-dfs-size': String(body.length), ...(ticket.grant ? {[GRANT_HEADER]: ticket.grant} : {})},
    body: new Uint8Array(body),
  })
}

function sealAtKeeper(ticket: Ticket, sha256: string, grant: string | undefined) {
  return json<{error?: string; fileId?: string; sha256?: string}>(`${ticket.keeper.url}/uploads/${ticket.uploadId}/seal`, {
    method: 'POST',
    headers: {'content-type': 'application/json', ...(grant ? {[GRANT_HEADER]: grant} : {})},
    body: JSON.stringify({sha256}),
  })
}

function sealAtMaster(cluster: TestCluster, ticket: Ticket, sha256: string) {
  return cluster.masterJson<{grant?: string; error?: string}>(`/uploads/${ticket.uploadId}/seal`, {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({sha256})})
}

describe('one-pass put', () => {
  const clusters = clusterPerTest()

  test('a byte corrupted in transit: put fails with one line, the keeper keeps nothing, and the same put then succeeds', async (t) => {
    const cluster = await clusters.start({keepers: 0, replicas: 1})
    const dataDir = join(cluster.dir, 'keeper-behind-proxy')
    const {proxy} = await startProxiedKeeper(t, cluster, dataDir)
    const source = join(clusters.work, 'corrupted.bin')
    const sha256 = await randomFile(source, 12 * MiB)

    proxy.corruptUploads = true
    const corrupt = await cluster.dfs(['put', source])
    assert.equal(proxy.corrupted, 1)
    assert.equal(corrupt.code, 1, corrupt.stderr)
    assert.match(corrupt.stderr, /^Error: received bytes have sha256 [0-9a-f]{64} but [0-9a-f]{64} was announced\n$/)
    assert.deepEqual(await cluster.dfsJson(['ls']), [])
    assert.deepEqual(await onDisk(dataDir), {tmp: [], blobs: []})

    proxy.corruptUploads = false
    const honest = await cluster.dfs(['put', source])
    assert.equal(honest.code, 0, honest.stderr)
    const out = join(clusters.work, 'corrupted.copy')
    assert.equal((await cluster.dfs(['get', 'corrupted.bin', '-o', out])).code, 0)
    assert.equal(await sha256File(out), sha256)
  })

  test('held bytes are no file until sealed, and only the master\'s seal grant for their very sha256 seals them', async () => {
    const cluster = await clusters.start({keepers: 1, replicas: 1})
    const dataDir = cluster.keeperDirs[0]!
    const body = randomBytes(MiB + 17)
    const sha256 = createHash('sha256').update(body).digest('hex')
    const ticket = await onePassTicket(cluster, 'held.bin', body.length)

    const held = await sendBytes(ticket, 'held.bin', body)
    assert.equal(held.status, 202, JSON.stringify(held.body))
    assert.deepEqual(held.body, {uploadId: ticket.uploadId, size: body.length, sha256})
    // Durable in tmp/, but not a file: not in blobs/, unknown to the master.
    const disk = await onDisk(dataDir)
    assert.equal(disk.tmp.length, 1)
    assert.deepEqual(disk.blobs, [])
    assert.equal((await cluster.masterJson('/files/held.bin')).status, 404)

    // The ticket's own grant names no sha256: it holds bytes, it seals nothing.
    const withTicketGrant = await sealAtKeeper(ticket, sha256, ticket.grant)
    assert.equal(withTicketGrant.status, 403, JSON.stringify(withTicketGrant.body))

    // A seal of other bytes than those held: the master grants it (it cannot know), the keeper refuses and removes them.
    const wrong = createHash('sha256').update('other bytes').digest('hex')
    const wrongSeal = await sealAtMaster(cluster, ticket, wrong)
    assert.equal(wrongSeal.status, 200, JSON.stringify(wrongSeal.body))
    // The ticket keeps the first sha256 it was told.
    assert.equal((await sealAtMaster(cluster, ticket, sha256)).status, 422)
    const refused = await sealAtKeeper(ticket, wrong, wrongSeal.body.grant)
    assert.equal(refused.status, 422, JSON.stringify(refused.body))
    assert.equal(refused.body.error, 'DFS_ERR_CHECKSUM_MISMATCH')
    // The keeper's own comparison refuses, before any commit reaches the master.
    assert.match(String((refused.body as {message?: string}).message), /^received bytes have sha256 [0-9a-f]{64} but [0-9a-f]{64} was announced$/)
    assert.deepEqual(await onDisk(dataDir), {tmp: [], blobs: []})
    assert.equal((await sealAtKeeper(ticket, wrong, wrongSeal.body.grant)).status, 410)
    assert.equal((await cluster.masterJson('/files/held.bin')).status, 404)

    // The same bytes on a new ticket, sealed with their sha256: a file, recorded by the master.
    const again = await onePassTicket(cluster, 'held.bin', body.length)
    assert.equal((await sendBytes(again, 'held.bin', body)).status, 202)
    const seal = await sealAtMaster(cluster, again, sha256)
    assert.equal(seal.status, 200)
    const stored = await sealAtKeeper(again, sha256, seal.body.grant)
    assert.equal(stored.status, 201, JSON.stringify(stored.body))
    const recorded = await cluster.masterJson<{fileId: string; sha256: string}>('/files/held.bin')
    assert.equal(recorded.body.fileId, again.uploadId)
    assert.equal(recorded.body.sha256, sha256)
    assert.deepEqual((await onDisk(dataDir)).tmp, [])

    // A client whose seal failed gives its held bytes up at once, with the ticket's grant.
    const givenUp = await onePassTicket(cluster, 'given-up.bin', body.length)
    assert.equal((await sendBytes(givenUp, 'given-up.bin', body)).status, 202)
    assert.equal((await onDisk(dataDir)).tmp.length, 1)
    const drop = () => json<{dropped: boolean}>(`${givenUp.keeper.url}/uploads/${givenUp.uploadId}`, {method: 'DELETE', headers: givenUp.grant ? {[GRANT_HEADER]: givenUp.grant} : {}})
    assert.deepEqual((await drop()).body, {uploadId: givenUp.uploadId, dropped: true})
    assert.deepEqual(await onDisk(dataDir), {tmp: [], blobs: [stored.body.fileId!, `${stored.body.fileId!}.json`].sort()})
    assert.deepEqual((await drop()).body, {uploadId: givenUp.uploadId, dropped: false})
  })

  test('bytes cut off before their end leave nothing held', async () => {
    const cluster = await clusters.start({keepers: 1, replicas: 1})
    const dataDir = cluster.keeperDirs[0]!
    const size = 4 * MiB
    const ticket = await onePassTicket(cluster, 'cut.bin', size)
    const stop = new AbortController()
    let sent = 0
    const answer = fetch(`${ticket.keeper.url}/uploads/${ticket.uploadId}?name=cut.bin`, {
      method: 'PUT',
      headers: {'content-type': 'application/octet-stream', 'x-dfs-size': String(size), ...(ticket.grant ? {[GRANT_HEADER]: ticket.grant} : {})},
      body: new ReadableStream<Uint8Array>({
        pull(controller) {
          sent++
          controller.enqueue(randomBytes(MiB))
          // Never the last MiB: the test cuts the connection once the keeper has begun a temp file.
          if (sent === 3) return new Promise<void>(() => {})
        },
      }),
      duplex: 'half',
      signal: stop.signal,
    } as RequestInit).catch((error: unknown) => error)
    await waitFor('the keeper to write the held upload to tmp/', async () => (await onDisk(dataDir)).tmp.length === 1)
    stop.abort()
    await answer
    await waitFor('the cut upload to leave tmp/', async () => (await onDisk(dataDir)).tmp.length === 0)
    assert.deepEqual((await onDisk(dataDir)).blobs, [])
    assert.equal((await sealAtKeeper(ticket, createHash('sha256').update('x').digest('hex'), undefined)).status, 410)
  })
})
