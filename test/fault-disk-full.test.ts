import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {readdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {GRANT_HEADER} from '../src/lib/grants.js'
import {mountSmallDisk} from './chaos/disk-faults.js'
import {TestCluster, dfs, randomFile, sha256File, waitFor} from './helpers/cluster.js'
import {HttpProxy} from './helpers/http-proxy.js'

const MiB = 1024 * 1024

/** Asks the master for a ticket and sends `body` straight to `keeperUrl` with it. */
async function upload(cluster: TestCluster, keeperUrl: string, name: string, body: Buffer<ArrayBuffer>) {
  const sha256 = createHash('sha256').update(body).digest('hex')
  const ticket = await cluster.masterJson<{uploadId: string; grant: string}>('/uploads', {
    method: 'POST',
    headers: {'content-type': 'application/json'},
    body: JSON.stringify({name, size: body.length, sha256}),
  })
  assert.equal(ticket.status, 201, JSON.stringify(ticket.body))
  const response = await fetch(`${keeperUrl}/files/${name}?upload=${ticket.body.uploadId}`, {
    method: 'PUT',
    headers: {'x-dfs-sha256': sha256, 'content-type': 'application/octet-stream', [GRANT_HEADER]: ticket.body.grant},
    body,
  })
  return {name, status: response.status, body: (await response.json()) as {error?: string; message?: string}}
}

// Every test mounts a disk and starts a cluster of its own.
describe('a keeper whose disk fills up', () => {
  test('takes only the uploads it has room for and answers 507 to the others', async (t) => {
    const disk = await mountSmallDisk(t, 12 * MiB)
    if (!disk) return
    let cluster: TestCluster | undefined
    try {
      cluster = await TestCluster.start({keepers: 0, replicas: 1})
      const small = await cluster.addKeeper(disk.path)
      // Two 8 MiB uploads at once into 12 MiB: the space is promised to the first, the second is refused.
      const running = cluster
      const results = await Promise.all([0, 1].map((index) => upload(running, small.url, `fill-${index}.bin`, randomBytes(8 * MiB))))
      const stored = results.filter((result) => result.status === 201)
      const refused = results.filter((result) => result.status !== 201)
      assert.equal(stored.length, 1, JSON.stringify(results))
      assert.equal(refused[0]!.status, 507)
      assert.equal(refused[0]!.body.error, 'DFS_ERR_INSUFFICIENT_STORAGE')
      assert.deepEqual(await readdir(join(disk.path, 'tmp')), [])
      const listed = await cluster.dfsJson<Array<{name: string}>>(['ls'])
      assert.deepEqual(listed.map((file) => file.name), [stored[0]!.name])
    } finally {
      await cluster?.stop()
      await disk.release()
    }
  })

  test('put that the master sends to a keeper whose disk just filled up gets a 507 and stores the file on a keeper with room', async (t) => {
    const disk = await mountSmallDisk(t, 12 * MiB)
    if (!disk) return
    let cluster: TestCluster | undefined
    let proxy: HttpProxy | undefined
    try {
      cluster = await TestCluster.start({keepers: 0, replicas: 1})
      const running = cluster
      // The roomy keeper holds a file, so the master, which prefers keepers that hold fewer bytes,
      // offers the small keeper first.
      const roomy = await cluster.addKeeper()
      const first = join(disk.scratch, 'first.bin')
      await randomFile(first, MiB)
      assert.equal((await cluster.dfs(['put', first])).code, 0)
      const small = await cluster.addKeeper(disk.path)
      await waitFor('both keepers alive, the roomy one holding its file', async () => {
        const keepers = await running.keeperStatus()
        return keepers.length === 2 && keepers.every((keeper) => keeper.alive) && keepers.find((keeper) => keeper.id === roomy.id)!.storedBytes > 0
      })

      // Between the master's offer and the upload, something else takes the small disk: the
      // master's figure of its free space is a heartbeat old, and only the keeper can say no.
      proxy = await HttpProxy.start(cluster.masterUrl, {
        async beforeAnswer(exchange) {
          if (exchange.path === '/uploads/batch' && (JSON.parse(exchange.answer) as {tickets: Array<{keeper?: {id: string}}>}).tickets.some((ticket) => ticket.keeper?.id === small.id)) {
            await writeFile(join(disk.path, 'filler'), randomBytes(10 * MiB))
          }
        },
      })
      const source = join(disk.scratch, 'big.bin')
      const sha256 = await randomFile(source, 8 * MiB)
      const put = await dfs(['put', source, '--json', '--master', proxy.url, '--token', cluster.token])
      assert.equal(put.code, 0, put.stderr)
      const [stored] = JSON.parse(put.stdout) as Array<{keeper: string; sha256: string}>

      // The master offered the small keeper; it answered 507; put asked again without it and went to the roomy one.
      const tickets = proxy.seen('POST', '/uploads/batch').map((exchange) => ({
        exclude: (JSON.parse(exchange.body) as {uploads: Array<{exclude?: string[]}>}).uploads.map((upload) => upload.exclude ?? []),
        keeper: (JSON.parse(exchange.answer) as {tickets: Array<{keeper: {id: string}}>}).tickets.map((ticket) => ticket.keeper.id),
      }))
      assert.deepEqual(tickets, [
        {exclude: [[]], keeper: [small.id]},
        {exclude: [[small.id]], keeper: [roomy.id]},
      ])
      assert.ok(small.logs.some((line) => line.includes('DFS_ERR_INSUFFICIENT_STORAGE')), small.logs.join('\n'))
      assert.equal(stored!.keeper, roomy.id)
      assert.equal(stored!.sha256, sha256)
      const recorded = await cluster.stat('big.bin')
      assert.deepEqual(recorded.replicas.map((replica) => replica.keeper), [roomy.id])
      assert.equal(await sha256File(cluster.blobPath(roomy.id, recorded.fileId)), sha256)
      // Nothing of it stayed on the small disk.
      assert.deepEqual(await readdir(join(disk.path, 'tmp')), [])
      assert.deepEqual(await readdir(join(disk.path, 'blobs')), [])
    } finally {
      await proxy?.close()
      await cluster?.stop()
      await disk.release()
    }
  })

  test('a disk that fills up in the middle of an upload: 507, the partial file is removed, nothing recorded', async (t) => {
    const disk = await mountSmallDisk(t, 12 * MiB)
    if (!disk) return
    let cluster: TestCluster | undefined
    try {
      cluster = await TestCluster.start({keepers: 0, replicas: 1})
      const small = await cluster.addKeeper(disk.path)
      const body = randomBytes(6 * MiB)
      const sha256 = createHash('sha256').update(body).digest('hex')
      const ticket = await cluster.masterJson<{uploadId: string; keeper: {id: string}; grant: string}>('/uploads', {
        method: 'POST',
        headers: {'content-type': 'application/json'},
        body: JSON.stringify({name: 'midway.bin', size: body.length, sha256}),
      })
      assert.equal(ticket.body.keeper.id, small.id)
      let filled!: () => void
      const diskFilled = new Promise<void>((resolve) => (filled = resolve))
      const stream = new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(body.subarray(0, MiB))
          await diskFilled
          controller.enqueue(body.subarray(MiB))
          controller.close()
        },
      })
      const upload = fetch(`${small.url}/files/midway.bin?upload=${ticket.body.uploadId}`, {
        method: 'PUT',
        headers: {'x-dfs-sha256': sha256, 'x-dfs-size': String(body.length), 'content-type': 'application/octet-stream', [GRANT_HEADER]: ticket.body.grant},
        body: stream,
        duplex: 'half',
      } as RequestInit)
      // Once the upload is under way, something else takes the rest of the disk.
      await waitFor('the upload to start', async () => (await readdir(join(disk.path, 'tmp'))).length > 0)
      await writeFile(join(disk.path, 'filler'), randomBytes(10 * MiB)).catch(() => {})
      filled()

      const response = await upload
      assert.equal(response.status, 507)
      assert.equal(((await response.json()) as {error: string}).error, 'DFS_ERR_INSUFFICIENT_STORAGE')
      assert.deepEqual(await readdir(join(disk.path, 'tmp')), [])
      assert.deepEqual(await readdir(join(disk.path, 'blobs')), [])
      assert.equal((await cluster.dfs(['stat', 'midway.bin'])).code, 3)
    } finally {
      await cluster?.stop()
      await disk.release()
    }
  })
})
