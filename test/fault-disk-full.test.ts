import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {mkdir, readdir, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {TestCluster, json, tempDir, waitFor} from './helpers/cluster.js'

const MiB = 1024 * 1024

/** Mounts a tmpfs of `size` bytes at `path`; false where this machine does not allow it (not root). */
function mountSmallDisk(path: string, size: number): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', path], {stdio: 'ignore'})
    return true
  } catch {
    return false
  }
}

describe('a keeper whose disk fills up', () => {
  let cluster: TestCluster
  let disk: string
  let mounted = false

  before(async () => {
    disk = join(await tempDir(), 'small-disk')
    await mkdir(disk)
    mounted = mountSmallDisk(disk, 12 * MiB)
  })
  after(async () => {
    await cluster?.stop()
    if (mounted) execFileSync('umount', ['-l', disk])
    await rm(disk, {recursive: true, force: true})
  })

  test('takes only the uploads it has room for, answers 507 to the others, and put goes to a keeper with room', async (t) => {
    if (!mounted) return t.skip('mounting a small tmpfs needs root')
    cluster = await TestCluster.start({keepers: 0, replicas: 1})
    const small = await cluster.addKeeper(disk)

    // Two 8 MiB uploads at once into 12 MiB: the space is promised to the first, the second is refused.
    const bodies = [randomBytes(8 * MiB), randomBytes(8 * MiB)]
    const results = await Promise.all(bodies.map(async (body, index) => {
      const sha256 = createHash('sha256').update(body).digest('hex')
      const name = `fill-${index}.bin`
      const ticket = await json<{uploadId: string}>(`${cluster.masterUrl}/uploads`, {
        method: 'POST',
        headers: {'content-type': 'application/json'},
        body: JSON.stringify({name, size: body.length, sha256}),
      })
      const response = await fetch(`${small.url}/files/${name}?upload=${ticket.body.uploadId}`, {
        method: 'PUT',
        headers: {'x-dfs-sha256': sha256, 'content-type': 'application/octet-stream'},
        body,
      })
      return {name, status: response.status, body: (await response.json()) as {error?: string; message?: string}}
    }))

    const stored = results.filter((result) => result.status === 201)
    const refused = results.filter((result) => result.status !== 201)
    assert.equal(stored.length, 1, JSON.stringify(results))
    assert.equal(refused[0]!.status, 507)
    assert.equal(refused[0]!.body.error, 'DFS_ERR_INSUFFICIENT_STORAGE')
    assert.deepEqual(await readdir(join(disk, 'tmp')), [])
    const listed = await cluster.dfsJson<Array<{name: string}>>(['ls'])
    assert.deepEqual(listed.map((file) => file.name), [stored[0]!.name])

    // The put client, told the disk is full, goes to a keeper with room.
    await cluster.addKeeper()
    await waitFor('the second keeper', async () => (await cluster.keeperStatus()).filter((keeper) => keeper.alive).length === 2)
    const roomy = cluster.keepers[1]!
    const source = join(await tempDir(), 'big.bin')
    await import('node:fs/promises').then((fs) => fs.writeFile(source, randomBytes(8 * MiB)))
    const put = await cluster.dfsJson<Array<{keeper: string}>>(['put', source])
    assert.equal(put[0]!.keeper, roomy.id)
  })

  test('a disk that fills up in the middle of an upload: 507, the partial file is removed, nothing recorded', async (t) => {
    if (!mounted) return t.skip('mounting a small tmpfs needs root')
    const small = cluster.keepers[0]!
    const stored = (await cluster.dfsJson<Array<{name: string}>>(['ls'])).filter((file) => file.name.startsWith('fill-'))
    for (const file of stored) assert.equal((await cluster.dfs(['rm', file.name])).code, 0)
    await waitFor('the small disk to be empty again', async () => (await readdir(join(disk, 'blobs'))).length === 0)

    const body = randomBytes(6 * MiB)
    const sha256 = createHash('sha256').update(body).digest('hex')
    const ticket = await json<{uploadId: string}>(`${cluster.masterUrl}/uploads`, {
      method: 'POST',
      headers: {'content-type': 'application/json'},
      body: JSON.stringify({name: 'midway.bin', size: body.length, sha256, exclude: [cluster.keepers[1]!.id]}),
    })
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
      headers: {'x-dfs-sha256': sha256, 'x-dfs-size': String(body.length), 'content-type': 'application/octet-stream'},
      body: stream,
      duplex: 'half',
    } as RequestInit)
    // Once the upload is under way, something else takes the rest of the disk.
    await waitFor('the upload to start', async () => (await readdir(join(disk, 'tmp'))).length > 0)
    await writeFile(join(disk, 'filler'), randomBytes(10 * MiB)).catch(() => {})
    filled()

    const response = await upload
    assert.equal(response.status, 507)
    assert.equal(((await response.json()) as {error: string}).error, 'DFS_ERR_INSUFFICIENT_STORAGE')
    assert.deepEqual(await readdir(join(disk, 'tmp')), [])
    assert.deepEqual(await readdir(join(disk, 'blobs')), [])
    assert.equal((await cluster.dfs(['stat', 'midway.bin'])).code, 3)
  })
})
