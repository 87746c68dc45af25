import assert from 'node:assert/strict'
import {mkdir, readFile, readdir, rm, stat, writeFile} from 'node:fs/promises'
import {basename, join, relative} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {TestCluster, json, tempDir} from './helpers/cluster.js'
import {SOME_FAILED_EXIT} from '../src/lib/base-command.js'

/** Every regular file below `dir`, as relative paths with "/", sorted. */
async function treeOf(dir: string): Promise<string[]> {
  const entries = await readdir(dir, {recursive: true, withFileTypes: true})
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)).split('\\').join('/'))
    .sort()
}

/** Makes the files (relative path → content) under `root`. */
async function makeTree(root: string, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(root, path, '..'), {recursive: true})
    await writeFile(join(root, path), content)
  }
}

// One cluster for the suite; every test works under folders of its own names.
describe('folders: names with "/", put and get of trees, ls and rm of prefixes and globs', () => {
  let cluster: TestCluster
  let work: string

  before(async () => {
    cluster = await TestCluster.start({keepers: 2, replicas: 1})
    work = await tempDir()
  })
  after(async () => {
    await cluster.stop()
    await rm(work, {recursive: true, force: true})
  })

  const names = async (pattern?: string) => (await cluster.dfsJson<Array<{name: string}>>(pattern === undefined ? ['ls'] : ['ls', pattern])).map((file) => file.name)

  test('put DIR --recursive stores DIRNAME/relative/path, and get FOLDER --recursive -o DIR recreates the tree', async () => {
    const files = {'a.mp4': 'first', 'sub/b.mp4': 'second', 'sub/deeper/c.txt': 'third', '.hidden/d': 'fourth'}
    const local = join(work, 'trip')
    await makeTree(local, files)
    const put = await cluster.dfs(['put', local, '--recursive'])
    assert.equal(put.code, 0, put.stderr)
    assert.deepEqual(await names('trip/'), ['trip/.hidden/d', 'trip/a.mp4', 'trip/sub/b.mp4', 'trip/sub/deeper/c.txt'])

    const back = join(work, 'trip-back')
    const got = await cluster.dfs(['get', 'trip/', '--recursive', '-o', back])
    assert.equal(got.code, 0, got.stderr)
    assert.deepEqual(await treeOf(back), Object.keys(files).sort())
    for (const [path, content] of Object.entries(files)) assert.equal(await readFile(join(back, path), 'utf8'), content, path)

    // One file of a folder goes by its base name, as cp does.
    const one = join(work, 'one')
    await mkdir(one)
    const single = await cluster.dfs(['get', 'trip/sub/deeper/c.txt', '-o', `${one}/`])
    assert.equal(single.code, 0, single.stderr)
    assert.deepEqual(await treeOf(one), ['c.txt'])
  })

  test('--prefix chooses the folder a tree is stored under, and goes before a single file\'s name too', async () => {
    const local = join(work, 'local-name')
    await makeTree(local, {'x.mp4': 'x', 'y/z.mp4': 'z'})
    const put = await cluster.dfs(['put', local, '--recursive', '--prefix', 'chosen/2024/'])
    assert.equal(put.code, 0, put.stderr)
    const file = join(work, 'loose.mp4')
    await writeFile(file, 'loose')
    const putFile = await cluster.dfs(['put', file, '--prefix', 'chosen/2024'])
    assert.equal(putFile.code, 0, putFile.stderr)
    assert.deepEqual(await names('chosen/'), ['chosen/2024/loose.mp4', 'chosen/2024/x.mp4', 'chosen/2024/y/z.mp4'])
    assert.deepEqual(await names('local-name/'), [])
  })

  test('put of a directory without --recursive is one clear line', async () => {
    const local = join(work, 'plain-dir')
    await makeTree(local, {'f': 'f'})
    const put = await cluster.dfs(['put', local])
    assert.notEqual(put.code, 0)
    assert.match(put.stderr, /is a directory \(put --recursive stores a folder\)/)
    assert.equal(put.stderr.trim().split('\n').length, 1, put.stderr)
  })

  test('ls lists a prefix, and globs: "*" stays within a folder, "**" crosses folders', async () => {
    const local = join(work, 'globs')
    await makeTree(local, {'a.mp4': '1', 'b.txt': '2', 'y/c.mp4': '3', 'y/z/d.mp4': '4'})
    const sibling = join(work, 'globs.mp4')
    await writeFile(sibling, 'sibling')
    assert.equal((await cluster.dfs(['put', local, '--recursive'])).code, 0)
    assert.equal((await cluster.dfs(['put', sibling])).code, 0)

    assert.deepEqual(await names('globs/'), ['globs/a.mp4', 'globs/b.txt', 'globs/y/c.mp4', 'globs/y/z/d.mp4'])
    assert.deepEqual(await names('globs'), ['globs.mp4', 'globs/a.mp4', 'globs/b.txt', 'globs/y/c.mp4', 'globs/y/z/d.mp4'])
    assert.deepEqual(await names('globs/*.mp4'), ['globs/a.mp4'])
    assert.deepEqual(await names('globs/**.mp4'), ['globs/a.mp4', 'globs/y/c.mp4', 'globs/y/z/d.mp4'])
    assert.deepEqual(await names('globs/*/?.mp4'), ['globs/y/c.mp4'])
    assert.deepEqual(await names('globs/nothing*'), [])

    // The master filters by the prefix itself: a client asking for a prefix gets only those names.
    const listed = await cluster.masterJson<{files: Array<{name: string}>}>(`/files?prefix=${encodeURIComponent('globs/y/')}`)
    assert.deepEqual(listed.body.files.map((file) => file.name), ['globs/y/c.mp4', 'globs/y/z/d.mp4'])

    const table = await cluster.dfs(['ls', 'globs/*.txt'])
    assert.equal(table.code, 0, table.stderr)
    assert.match(table.stdout, /globs\/b\.txt/)
    assert.doesNotMatch(table.stdout, /a\.mp4/)
  })

  test('rm takes several names, and --recursive FOLDER removes what is under it and nothing beside it', async () => {
    const local = join(work, 'doomed')
    await makeTree(local, {'a': 'a', 'b': 'b', 'c': 'c', 'sub/d': 'd', 'sub/e': 'e'})
    const sibling = join(work, 'doomed.mp4')
    await writeFile(sibling, 'stays')
    assert.equal((await cluster.dfs(['put', local, '--recursive'])).code, 0)
    assert.equal((await cluster.dfs(['put', sibling])).code, 0)

    const several = await cluster.dfs(['rm', 'doomed/a', 'doomed/b'])
    assert.equal(several.code, 0, several.stderr)
    assert.deepEqual(await names('doomed'), ['doomed.mp4', 'doomed/c', 'doomed/sub/d', 'doomed/sub/e'])

    // "doomed" is the folder doomed/, never doomed.mp4 beside it.
    const recursive = await cluster.dfs(['rm', '--recursive', 'doomed'])
    assert.equal(recursive.code, 0, recursive.stderr)
    assert.deepEqual(await names('doomed'), ['doomed.mp4'])

    // Each name fails on its own, and the command says how many failed, with the partial-failure code.
    const partly = await cluster.dfs(['rm', 'doomed.mp4', 'doomed/never-there'])
    assert.equal(partly.code, SOME_FAILED_EXIT)
    assert.match(partly.stdout, /removed doomed\.mp4/)
    assert.match(partly.stderr, /failed doomed\/never-there: no file named/)
    assert.match(partly.stderr, /1 of 2 removals failed/)
    assert.deepEqual(await names('doomed'), [])
  })

  test('get --no-clobber refuses to overwrite a local file: one line, nothing written', async () => {
    const file = join(work, 'clobber-src.mp4')
    await writeFile(file, 'stored bytes')
    assert.equal((await cluster.dfs(['put', file, '--name', 'clobber/x.mp4'])).code, 0)
    const existing = join(work, 'existing.mp4')
    await writeFile(existing, 'local bytes')

    const refused = await cluster.dfs(['get', 'clobber/x.mp4', '-o', existing, '--no-clobber'])
    assert.equal(refused.code, 4)
    assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr)
    assert.match(refused.stderr, /exists; --no-clobber leaves it alone/)
    assert.equal(await readFile(existing, 'utf8'), 'local bytes')
    assert.deepEqual((await readdir(work)).filter((entry) => entry.includes('dfs-part')), [])

    // Without it, the local file is replaced; and --no-clobber writes a file that is not there.
    const fresh = join(work, 'fresh.mp4')
    assert.equal((await cluster.dfs(['get', 'clobber/x.mp4', '-o', fresh, '--no-clobber'])).code, 0)
    assert.equal(await readFile(fresh, 'utf8'), 'stored bytes')
    assert.equal((await cluster.dfs(['get', 'clobber/x.mp4', '-o', existing])).code, 0)
    assert.equal(await readFile(existing, 'utf8'), 'stored bytes')
  })

  test('names with "." or ".." folders, or empty ones, are refused by the CLI, the master and the keeper', async () => {
    const local = join(work, 'escape.bin')
    await writeFile(local, 'x')
    for (const name of ['../x', 'a/../../x', './x', 'a/./x', '/abs', 'a//b', 'trailing/']) {
      const put = await cluster.dfs(['put', local, '--name', name])
      assert.equal(put.code, 2, `${name}: ${put.stderr}`)
      assert.match(put.stderr, /file name/, name)
      assert.equal(put.stderr.trim().split('\n').length, 1, put.stderr)

      const master = await cluster.masterJson<{error: string}>('/uploads', {
        method: 'POST',
        headers: {'content-type': 'application/json'},
        body: JSON.stringify({name, size: 1, sha256: 'a'.repeat(64)}),
      })
      assert.deepEqual([master.status, master.body.error], [400, 'DFS_ERR_INVALID_NAME'], name)
      for (const path of [`/files/${encodeURIComponent(name)}`, `/files/${encodeURIComponent(name)}/url`]) {
        const answer = await cluster.masterJson<{error: string}>(path)
        assert.deepEqual([answer.status, answer.body.error], [400, 'DFS_ERR_INVALID_NAME'], path)
      }

      const keeper = await json<{error: string}>(`${cluster.keepers[0]!.url}/files/${encodeURIComponent(name)}?upload=abc`, {
        method: 'PUT',
        headers: {'x-dfs-sha256': 'a'.repeat(64), 'content-type': 'application/octet-stream'},
        body: 'x',
      })
      assert.deepEqual([keeper.status, keeper.body.error], [400, 'DFS_ERR_INVALID_NAME'], name)
    }

    // A --prefix that climbs gives names that climb: refused too, per file.
    const prefixed = await cluster.dfs(['put', local, '--prefix', '../up'])
    assert.equal(prefixed.code, 2, prefixed.stderr)
    assert.equal(await stat(join(work, '..', 'up')).catch(() => undefined), undefined)
    assert.ok((await names()).every((name) => !name.includes('..') && basename(name) !== 'escape.bin'), JSON.stringify(await names()))
  })

  test('a stored name with folders is read back through every route: stat, url, get to stdout', async () => {
    const file = join(work, 'deep.mp4')
    await writeFile(file, 'deep bytes')
    const name = 'a/b c/d%2Fe/f.mp4'
    assert.equal((await cluster.dfs(['put', file, '--name', name])).code, 0)
    const info = await cluster.dfsJson<{name: string}>(['stat', name])
    assert.equal(info.name, name)
    const out = await cluster.dfs(['get', name, '-o', '-'])
    assert.equal(out.code, 0, out.stderr)
    assert.equal(out.stdout, 'deep bytes')
    const url = (await cluster.dfs(['url', name])).stdout.trim()
    const served = await fetch(url)
    assert.equal(served.status, 200)
    assert.equal(await served.text(), 'deep bytes')
  })
})
