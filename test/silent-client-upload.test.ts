// A client that stops sending in the middle of an upload's body (its process paused, a stalled link
// or proxy, a half-dead connection) must not hold a keeper's disk: once it sent no byte for the
// keeper's stall timeout (--stall-timeout) while the keeper waited for one, the keeper drops the
// upload (temp file removed, space reservation released, nothing committed), says so in one log
// line, and closes the connection; the name stays free for the next put. An upload that is slow but
// moving is never dropped.

import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {readdir} from 'node:fs/promises'
import {request, type ClientRequest} from 'node:http'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {GRANT_HEADER} from '../src/lib/grants.js'
import {PIPELINE_HEADER} from '../src/lib/protocol.js'
import {bearer, clusterPerSuite, randomFile, sha256File, waitFor, type ServerProcess, type TestCluster} from './helpers/cluster.js'
import {parseMetrics, sumOf} from './helpers/prometheus-text.js'
import {logMessages} from './helpers/server-logs.js'

const MiB = 1024 * 1024
// The keeper's stall timeout, short so that the tests wait seconds, not the default 30 s.
const STALL_MS = 3000
// What the silent uploads announce, and so reserve: far more than the disk's free space moves by
// otherwise while a test runs (other processes write on this disk too), so that the reservation
// shows in the keeper's free bytes.
const ANNOUNCED = 1024 * MiB

interface Ticket {
  uploadId: string
  keeper: {id: string; url: string}
  grant?: string
}

/** Temp files in a keeper's tmp/ (uploads under way or their leftovers; not its readiness probes). */
async function tmpFiles(dataDir: string): Promise<string[]> {
  return (await readdir(join(dataDir, 'tmp')).catch(() => [])).filter((name) => !name.endsWith('.probe'))
}

/** A keeper's gauges, by its /metrics. */
async function gauges(cluster: TestCluster, keeper: ServerProcess): Promise<{free: number; active: number}> {
  const response = await fetch(`${keeper.url}/metrics`, {headers: bearer(cluster.token)})
  assert.equal(response.status, 200)
  const samples = parseMetrics(await response.text())
  return {free: sumOf(samples, 'dfs_keeper_free_bytes'), active: sumOf(samples, 'dfs_keeper_active_transfers')}
}

/** How a raw upload ended for its client: the keeper's answer, or the connection closed under it. */
type Outcome = {status: number; body: string} | {closed: string}

/**
 * An upload's request to a keeper, sent by hand: headers now, the body as the test writes it. Its
 * own connection (no pooling), so that the keeper's closing it is this upload's alone.
 */
function rawUpload(url: string, headers: Record<string, string>): {req: ClientRequest; outcome: Promise<Outcome>} {
  const req = request(url, {method: 'PUT', agent: false, headers: {'content-type': 'application/octet-stream', ...headers}})
  const outcome = new Promise<Outcome>((resolve) => {
    req.on('response', (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => (body += chunk))
      response.on('end', () => resolve({status: response.statusCode ?? 0, body}))
      response.on('error', (error) => resolve({closed: error.message}))
    })
    req.on('error', (error) => resolve({closed: error.message}))
  })
  return {req, outcome}
}

/**
 * Sends the first MiB of an upload, then a byte every half second (moving, far below the stall
 * timeout) until each of `keepers` shows it under way: its bytes in tmp/ and its size reserved.
 * Then the client goes silent, its connection left open. Answers the free bytes each keeper
 * reported before.
 */
async function goSilentMidway(cluster: TestCluster, keepers: ServerProcess[], req: ClientRequest): Promise<number[]> {
  const before: number[] = []
  for (const keeper of keepers) {
    assert.deepEqual(await tmpFiles(cluster.dataDirOf(keeper)), [], `no upload under way on ${keeper.id} before this one`)
    before.push((await gauges(cluster, keeper)).free)
  }

  req.write(randomBytes(MiB))
  const trickle = setInterval(() => req.write(randomBytes(1)), 500)
  try {
    for (const [index, keeper] of keepers.entries()) {
      await waitFor(`the upload under way on keeper ${keeper.id}: its bytes in tmp/ and its space reserved`, async () => {
        const {free, active} = await gauges(cluster, keeper)
        return active === 1 && free <= before[index]! - ANNOUNCED / 2 && (await tmpFiles(cluster.dataDirOf(keeper))).length > 0
      })
    }
  } finally {
    clearInterval(trickle)
  }

  return before
}

/** Waits for `keeper` to end its transfer of the upload, then checks that it kept nothing of it. */
async function assertNothingKept(cluster: TestCluster, keeper: ServerProcess, before: number): Promise<void> {
  await waitFor(`keeper ${keeper.id} to end the transfer`, async () => (await gauges(cluster, keeper)).active === 0)
  assert.deepEqual(await tmpFiles(cluster.dataDirOf(keeper)), [], `tmp/ of ${keeper.id} is empty`)
  assert.ok((await gauges(cluster, keeper)).free > before - ANNOUNCED / 2, `the space ${keeper.id} reserved for the upload is free again`)
}

/**
 * Waits for the keeper to give the silent upload up, then checks it left nothing of it: the one
 * line about it (of `lines` lines naming it in all), the connection closed, no temp file, no
 * reservation, no file.
 */
async function assertDropped(cluster: TestCluster, keeper: ServerProcess, upload: {name: string; uploadId: string; grant?: string}, before: number, outcome: Promise<Outcome>, logsFrom: number, lines = 1): Promise<void> {
  const line = `upload of "${upload.name}" (${upload.uploadId}): the client at 127.0.0.1 sent no byte for ${STALL_MS / 1000} s; dropped, nothing kept`
  await waitFor(`the keeper's log line '${line}'`, () => logMessages(keeper).slice(logsFrom).includes(line))
  // The client, were it to wake, finds its connection closed.
  const ended = await waitFor('the client\'s connection to end', () => Promise.race([outcome, new Promise<undefined>((resolve) => setTimeout(resolve, 100))]))
  assert.ok('closed' in ended, `the keeper closed the connection: ${JSON.stringify(ended)}`)
  // Nothing kept: no temp file, the space reserved for it free again, no transfer under way.
  await assertNothingKept(cluster, keeper, before)
  // One line about it, with no credential in any.
  const logged = keeper.logs.slice(logsFrom)
  assert.equal(logMessages(keeper).slice(logsFrom).filter((message) => message.includes(upload.name)).length, lines, logged.join('\n'))
  if (upload.grant) assert.ok(!logged.some((entry) => entry.includes(upload.grant!)), 'no grant in the log')
  // Nothing published or committed: the master has no file of that name.
  const stat = await cluster.masterJson<{error?: string}>(`/files/${upload.name}`)
  assert.equal(stat.status, 404, JSON.stringify(stat.body))
  assert.equal(stat.body.error, 'DFS_ERR_NOT_FOUND')
}

/** A put of the name afterwards works (of `size`: over 8 MiB a one-pass put), and the file reads back byte-exact. */
async function assertNameWorks(cluster: TestCluster, work: string, name: string, size: number): Promise<void> {
  const source = join(work, `${name}.again`)
  const sha256 = await randomFile(source, size)
  const put = await cluster.dfs(['put', source, '--name', name])
  assert.equal(put.code, 0, put.stderr)
  const copy = join(work, `${name}.read`)
  const get = await cluster.dfs(['get', name, '-o', copy])
  assert.equal(get.code, 0, get.stderr)
  assert.equal(await sha256File(copy), sha256)
}

describe('a client that goes silent mid-upload', () => {
  const suite = clusterPerSuite({keepers: 1, replicas: 1, keeperArgs: ['--stall-timeout', `${STALL_MS}ms`]})

  test('PUT /files/:name: after the stall timeout without a byte the keeper drops the upload, frees its space and closes the connection; the name can be put again', async () => {
    const {cluster, work} = suite
    const keeper = cluster.keepers[0]!
    const name = 'silent.bin'
    const sha256 = '0'.repeat(64)
    const ticket = await cluster.masterJson<Ticket>('/uploads', {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({name, size: ANNOUNCED, sha256})})
    assert.equal(ticket.status, 201, JSON.stringify(ticket.body))
    const {uploadId, grant} = ticket.body
    const logsFrom = keeper.logs.length
    const {req, outcome} = rawUpload(`${ticket.body.keeper.url}/files/${name}?upload=${uploadId}`, {'x-dfs-sha256': sha256, 'x-dfs-size': String(ANNOUNCED), ...(grant ? {[GRANT_HEADER]: grant} : {})})
    try {
      const [before] = await goSilentMidway(cluster, [keeper], req)
      await assertDropped(cluster, keeper, {name, uploadId, grant}, before!, outcome, logsFrom)
    } finally {
      req.destroy()
    }

    await assertNameWorks(cluster, work, name, 3 * MiB)
  })

  test('PUT /uploads/:id (one-pass): after the stall timeout without a byte the keeper holds nothing, so nothing can be sealed; the name can be put again', async () => {
    const {cluster, work} = suite
    const keeper = cluster.keepers[0]!
    const name = 'silent-one-pass.bin'
    const ticket = await cluster.masterJson<Ticket>('/uploads', {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({name, size: ANNOUNCED})})
    assert.equal(ticket.status, 201, JSON.stringify(ticket.body))
    const {uploadId, grant} = ticket.body
    const logsFrom = keeper.logs.length
    const {req, outcome} = rawUpload(`${ticket.body.keeper.url}/uploads/${uploadId}?name=${name}`, {'x-dfs-size': String(ANNOUNCED), ...(grant ? {[GRANT_HEADER]: grant} : {})})
    try {
      const [before] = await goSilentMidway(cluster, [keeper], req)
      await assertDropped(cluster, keeper, {name, uploadId, grant}, before!, outcome, logsFrom)
    } finally {
      req.destroy()
    }

    // The keeper holds no bytes of it: a seal finds nothing (checked before its grant).
    const seal = await fetch(`${ticket.body.keeper.url}/uploads/${uploadId}/seal`, {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({sha256: '0'.repeat(64)})})
    assert.equal(seal.status, 410)
    assert.equal(((await seal.json()) as {error: string}).error, 'DFS_ERR_UNKNOWN_UPLOAD')
    await assertNameWorks(cluster, work, name, 9 * MiB)
  })

  test('an upload that trickles (a chunk a second, below the stall timeout) for several stall timeouts is stored whole', async () => {
    const {cluster, work} = suite
    const keeper = cluster.keepers[0]!
    const name = 'trickle.bin'
    // A chunk a second for over three stall timeouts.
    const chunks = Array.from({length: Math.ceil((3 * STALL_MS) / 1000) + 2}, () => randomBytes(64 * 1024))
    const body = Buffer.concat(chunks)
    const sha256 = createHash('sha256').update(body).digest('hex')
    const ticket = await cluster.masterJson<Ticket>('/uploads', {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({name, size: body.length, sha256})})
    assert.equal(ticket.status, 201, JSON.stringify(ticket.body))
    const {uploadId, grant} = ticket.body
    const logsFrom = keeper.logs.length
    const {req, outcome} = rawUpload(`${ticket.body.keeper.url}/files/${name}?upload=${uploadId}`, {'x-dfs-sha256': sha256, 'x-dfs-size': String(body.length), ...(grant ? {[GRANT_HEADER]: grant} : {})})
    for (const [index, chunk] of chunks.entries()) {
      if (index > 0) await new Promise((resolve) => setTimeout(resolve, 1000))
      req.write(chunk)
    }

    req.end()
    const answer = await outcome
    assert.ok('status' in answer, `the keeper answered: ${JSON.stringify(answer)}`)
    assert.equal(answer.status, 201, answer.body)
    assert.equal((JSON.parse(answer.body) as {sha256: string}).sha256, sha256)
    assert.ok(!logMessages(keeper).slice(logsFrom).some((message) => message.includes('sent no byte')), keeper.logs.slice(logsFrom).join('\n'))
    const copy = join(work, `${name}.read`)
    const get = await cluster.dfs(['get', name, '-o', copy])
    assert.equal(get.code, 0, get.stderr)
    assert.equal(await sha256File(copy), sha256)
  })
})

describe('a client that goes silent mid-upload down a write pipeline', () => {
  const suite = clusterPerSuite({keepers: 2, replicas: 2, keeperArgs: ['--stall-timeout', `${STALL_MS}ms`]})

  test('PUT /uploads/:id with x-dfs-pipeline: the first keeper drops the upload and cuts off the one it forwards to; neither keeps a byte or a reservation', async () => {
    const {cluster, work} = suite
    const name = 'silent-pipelined.bin'
    const ticket = await cluster.masterJson<Ticket & {pipeline?: Array<{id: string; url: string; grant?: string}>}>('/uploads', {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({name, size: ANNOUNCED, pipeline: true})})
    assert.equal(ticket.status, 201, JSON.stringify(ticket.body))
    const {uploadId, grant, pipeline} = ticket.body
    assert.equal(pipeline?.length, 1, JSON.stringify(ticket.body))
    const first = cluster.keeperById(ticket.body.keeper.id)
    const second = cluster.keeperById(pipeline![0]!.id)
    const logsFrom = first.logs.length
    const {req, outcome} = rawUpload(`${ticket.body.keeper.url}/uploads/${uploadId}?name=${name}`, {'x-dfs-size': String(ANNOUNCED), [PIPELINE_HEADER]: JSON.stringify(pipeline), ...(grant ? {[GRANT_HEADER]: grant} : {})})
    try {
      const [beforeFirst, beforeSecond] = await goSilentMidway(cluster, [first, second], req)
      // Its line, and the one of its downstream cut off for it.
      await assertDropped(cluster, first, {name, uploadId, grant}, beforeFirst!, outcome, logsFrom, 2)
      await assertNothingKept(cluster, second, beforeSecond!)
    } finally {
      req.destroy()
    }

    await assertNameWorks(cluster, work, name, 9 * MiB)
  })
})
