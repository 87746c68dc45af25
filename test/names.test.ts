import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {rm, writeFile} from 'node:fs/promises'
import {join, posix} from 'node:path'
import {after, before, describe, test} from 'node:test'

import fc from 'fast-check'

import {nameProblem, printable} from '../src/lib/names.js'
import {TestCluster, json, sha256File, tempDir} from './helpers/cluster.js'

describe('file names are never usable as paths', () => {
  test('accepts ordinary names, with spaces, non-ASCII letters and dots inside', () => {
    for (const name of ['video.mp4', 'holiday 2024.mp4', 'été.mp4', 'a', 'x'.repeat(255), 'ü'.repeat(127), 'a..b.mp4', '...', '.hidden', 'end.', 'עברית.mp4', 'videos/2024/a.mp4', 'a/b', '.config/x', 'a/.../b']) {
      assert.equal(nameProblem(name), undefined, name)
    }
  })

  test('refuses empty names, dot names, separators, control characters and names over 255 bytes', () => {
    const bad = ['', '.', '..', '../x', 'a/..', 'a/./b', './a', '/a', 'a/', 'a//b', '/', 'a\\b', 'tab\there', 'nul\u0000', 'del\u007f', 'c1\u0085', 'x'.repeat(256), 'ü'.repeat(128), ' lead', 'trail ']
    for (const name of bad) assert.notEqual(nameProblem(name), undefined, JSON.stringify(name))
    assert.notEqual(nameProblem(42), undefined)
  })

  test('refuses characters that make a name look like another: bidi controls, zero-width characters, line separators', () => {
    const deceptive = [
      ...['\u202a', '\u202b', '\u202c', '\u202d', '\u202e'],
      ...['\u2066', '\u2067', '\u2068', '\u2069'],
      ...['\u200b', '\u200c', '\u200d', '\ufeff'],
      ...['\u2028', '\u2029'],
      ...['\u200e', '\u200f', '\u061c'],
    ]
    for (const char of deceptive) {
      // In the middle of the name, where trimming would not catch it.
      const name = `invoice${char}4pm.mp4`
      const problem = nameProblem(name)
      assert.notEqual(problem, undefined, `U+${char.charCodeAt(0).toString(16)}`)
      assert.match(problem!, /invisible or text-direction/, `U+${char.charCodeAt(0).toString(16)}: ${problem}`)
      // The error line shows the character escaped, never raw.
      assert.ok(!problem!.includes(char), `U+${char.charCodeAt(0).toString(16)} is printed raw`)
    }
  })

  test('a name that is accepted stays inside any directory it is joined to, and is its own normal form', () => {
    const segment = fc.oneof(fc.constantFrom('.', '..', '', 'a', 'b.mp4', '...', ' ', '\\'), fc.string({maxLength: 6}))
    fc.assert(
      fc.property(fc.array(segment, {minLength: 1, maxLength: 5}), (segments) => {
        const name = segments.join('/')
        if (nameProblem(name) !== undefined) return
        assert.equal(posix.normalize(name), name)
        assert.ok(posix.resolve('/root/dir', name).startsWith('/root/dir/'), name)
        assert.ok(!/[\\\u0000]/.test(name), name)
      }),
      {seed: 10, numRuns: 2000},
    )
  })

  test('printable escapes what would hide in a terminal line', () => {
    assert.equal(printable('a\u202eb\nc'), 'a\\u202eb\\nc')
  })
})

describe('the master, the keepers and the CLI apply the same name rules', () => {
  let cluster: TestCluster
  let work: string

  before(async () => {
    cluster = await TestCluster.start({keepers: 1, replicas: 1})
    work = await tempDir()
  })
  after(async () => {
    await cluster.stop()
    await rm(work, {recursive: true, force: true})
  })

  test('a name with ".." inside is stored and read back', async () => {
    const local = join(work, 'clip.bin')
    await writeFile(local, 'dots inside are fine')
    const put = await cluster.dfs(['put', local, '--name', 'a..b.mp4'])
    assert.equal(put.code, 0, put.stderr)
    const out = join(work, 'back.bin')
    const got = await cluster.dfs(['get', 'a..b.mp4', '-o', out])
    assert.equal(got.code, 0, got.stderr)
    assert.equal(await sha256File(out), createHash('sha256').update('dots inside are fine').digest('hex'))
  })

  test('a name with a right-to-left override is refused by the CLI, the master and the keeper', async () => {
    const name = 'invoice\u202egpj.mp4'
    const local = join(work, 'trojan.bin')
    await writeFile(local, 'x')
    const put = await cluster.dfs(['put', local, '--name', name])
    assert.notEqual(put.code, 0)
    assert.match(put.stderr, /invisible or text-direction/)
    assert.equal(put.stderr.trim().split('\n').length, 1, put.stderr)

    const master = await cluster.masterJson<{error: string}>('/uploads', {
      method: 'POST',
      headers: {'content-type': 'application/json'},
      body: JSON.stringify({name, size: 1, sha256: 'a'.repeat(64)}),
    })
    assert.deepEqual([master.status, master.body.error], [400, 'DFS_ERR_INVALID_NAME'])

    const keeper = await json<{error: string}>(`${cluster.keepers[0]!.url}/files/${encodeURIComponent(name)}?upload=abc`, {
      method: 'PUT',
      headers: {'x-dfs-sha256': 'a'.repeat(64), 'content-type': 'application/octet-stream'},
      body: 'x',
    })
    assert.deepEqual([keeper.status, keeper.body.error], [400, 'DFS_ERR_INVALID_NAME'])
    const listed = await cluster.dfsJson<Array<{name: string}>>(['ls'])
    assert.ok(listed.every((file) => !file.name.startsWith('invoice')), JSON.stringify(listed))
  })
})
