// Sync-behind (src/lib/sync-behind.ts): a file's writeback starts every N bytes while it is written,
// one sync at a time per file and at most SYNC_BEHIND_MAX_IN_FLIGHT per process; an error met by a
// sync behind fails the file's final fsync (Linux reports it to one fsync only). And the keepers'
// durable writes (spoolDurably) do sync behind, with the bytes intact.

import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {Readable} from 'node:stream'
import {describe, test} from 'node:test'

import {spoolDurably} from '../src/lib/durable-file.js'
import {SYNC_BEHIND_BYTES, SYNC_BEHIND_MAX_IN_FLIGHT, SyncBehind, syncsBehindStarted} from '../src/lib/sync-behind.js'

/** A datasync that waits until the test ends it, counting its calls. */
function heldSyncs() {
  const pending: Array<{resolve: () => void; reject: (error: Error) => void}> = []
  let calls = 0
  const datasync = () => {
    calls++
    return new Promise<void>((resolve, reject) => pending.push({resolve, reject}))
  }

  return {datasync, pending, calls: () => calls}
}

describe('SyncBehind', () => {
  test('starts a sync every `every` bytes, never two at once for a file, and catches up after one ends', async () => {
    const {datasync, pending, calls} = heldSyncs()
    const behind = new SyncBehind(datasync, 100)
    behind.written(60)
    assert.equal(calls(), 0, 'below `every`: no sync')
    behind.written(60)
    assert.equal(calls(), 1, 'past `every`: one sync')
    behind.written(500)
    assert.equal(calls(), 1, 'no second sync while one is under way')
    pending.shift()!.resolve()
    await behind.idle()
    behind.written(1)
    assert.equal(calls(), 2, 'the bytes written meanwhile are synced at the next write')
    pending.shift()!.resolve()
    await behind.settle()
  })

  test('an error of a sync behind is thrown by settle (before the final fsync), not lost', async () => {
    const {datasync, pending} = heldSyncs()
    const behind = new SyncBehind(datasync, 10)
    behind.written(10)
    pending.shift()!.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), {code: 'EIO'}))
    await behind.idle()
    behind.written(10)
    pending.shift()!.resolve()
    await assert.rejects(behind.settle(), /EIO/)
  })

  test(`at most ${SYNC_BEHIND_MAX_IN_FLIGHT} syncs behind run at once in a process, over all files`, async () => {
    const syncs = Array.from({length: SYNC_BEHIND_MAX_IN_FLIGHT + 1}, () => heldSyncs())
    const files = syncs.map(({datasync}) => new SyncBehind(datasync, 10))
    for (const file of files) file.written(10)
    assert.deepEqual(syncs.map(({calls}) => calls()), [...Array(SYNC_BEHIND_MAX_IN_FLIGHT).fill(1), 0])
    syncs[0].pending.shift()!.resolve()
    await files[0].idle()
    files.at(-1)!.written(1)
    assert.equal(syncs.at(-1)!.calls(), 1, 'the last file starts its sync once another ended')
    for (const {pending} of syncs) pending.shift()?.resolve()
    await Promise.all(files.map((file) => file.settle()))
  })
})

describe('spoolDurably syncs behind its writes', () => {
  test(`a body of 3 × ${SYNC_BEHIND_BYTES / 2 ** 20} MiB is written intact with syncs behind it`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dfs-sync-behind-'))
    try {
      const chunk = Buffer.alloc(1024 * 1024)
      const chunks = (3 * SYNC_BEHIND_BYTES) / chunk.length
      const expected = createHash('sha256')
      // Streamed from a generator, a different byte per MiB, so that no sync behind can pass for the body.
      const body = Readable.from(
        (function* () {
          for (let index = 0; index < chunks; index++) {
            const bytes = Buffer.from(chunk.fill(index % 251))
            expected.update(bytes)
            yield bytes
          }
        })(),
      )
      const before = syncsBehindStarted()
      const spooled = await spoolDurably(body, dir)
      assert.ok(syncsBehindStarted() - before >= 1, `syncs behind started: ${syncsBehindStarted() - before}`)
      assert.equal(spooled.size, 3 * SYNC_BEHIND_BYTES)
      const onDisk = createHash('sha256')
      for await (const bytes of createReadStream(spooled.path)) onDisk.update(bytes as Buffer)
      const digest = expected.digest('hex')
      assert.equal(spooled.sha256, digest)
      assert.equal(onDisk.digest('hex'), digest)
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })
})
