// GET /files pages through 100,000 files by name, with a prefix and a substring search done by the
// master (the dashboard's file list): every page walk gives exactly the matching names, in order,
// once each. The master's table and HTTP face run in this process, with no keeper.

import assert from 'node:assert/strict'
import {rm} from 'node:fs/promises'
import {after, before, describe, test} from 'node:test'

import type {FastifyInstance} from 'fastify'

import type {ListResponse} from '../src/lib/protocol.js'
import {Master} from '../src/roles/master/master.js'
import {createMasterServer} from '../src/roles/master/server.js'
import {FILES_PAGE_SQL, pageParameters} from '../src/roles/master/table.js'
import {tempDir} from './helpers/cluster.js'

const FILES = 100_000

/** Names of several shapes: deep prefixes, upper and lower case, wildcard characters of LIKE, non-ASCII. */
function nameOf(index: number): string {
  switch (index % 5) {
    case 0:
      return `videos/2024/clip-${String(index).padStart(6, '0')}.mp4`
    case 1:
      return `videos/2025/Clip-${String(index).padStart(6, '0')}.MP4`
    case 2:
      return `日本/映像-${index}.mp4`
    case 3:
      return index % 1000 === 3 ? `sale 50%_off-${index}.txt` : `sale 50xyoff-${index}.txt`
    default:
      return `z-${index}`
  }
}

// The master's order: names as UTF-8 bytes (SQLite's BINARY collation).
const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b))

describe(`GET /files pages through ${FILES} files`, () => {
  let dir: string
  let master: Master
  let app: FastifyInstance
  const names = Array.from({length: FILES}, (_, index) => nameOf(index)).sort(byBytes)

  before(async () => {
    dir = await tempDir()
    master = new Master({dataDir: dir, replicas: 3, heartbeatTimeoutMs: 60_000, replicationIntervalMs: 3_600_000, log: {info() {}, warn() {}}})
    master.table.transaction(() => {
      names.forEach((name, index) => master.table.insertFile({fileId: `f${index}`, name, size: index, sha256: 'a'.repeat(64), createdAt: index}, []))
    })
    app = createMasterServer(master, 'silent')
    await app.ready()
  })
  after(async () => {
    await app.close()
    await master.stop()
    await rm(dir, {recursive: true, force: true})
  })

  async function page(query: Record<string, string>): Promise<ListResponse> {
    const answer = await app.inject({method: 'GET', url: `/files?${new URLSearchParams(query)}`})
    assert.equal(answer.statusCode, 200, answer.body)
    return answer.json<ListResponse>()
  }

  /** Every page of a query, walked with `next`. */
  async function walk(query: Record<string, string>, limit: number): Promise<string[]> {
    const seen: string[] = []
    let after: string | undefined
    for (;;) {
      const answer = await page({...query, limit: String(limit), ...(after === undefined ? {} : {after})})
      assert.ok(answer.files.length <= limit)
      assert.equal(answer.total, undefined, 'no count of the whole range on a page that did not ask for one')
      seen.push(...answer.files.map((file) => file.name))
      if (answer.next === undefined) return seen
      // A page that does not move on would loop forever.
      assert.ok(after === undefined || byBytes(answer.next, after) > 0, `the page after "${after}" moves on, not to "${answer.next}"`)
      assert.equal(answer.files.length, limit, 'only the last page is short')
      assert.equal(answer.next, answer.files.at(-1)!.name)
      after = answer.next
    }
  }

  test('all of them, 1000 at a time, in order, once each; the total when asked for', async () => {
    const first = await page({limit: '1000', total: 'true'})
    assert.equal(first.total, FILES)
    assert.equal((await page({limit: '1000', after: first.next!, total: 'true'})).total, FILES, 'the total of every page, not of what follows')
    assert.equal((await page({limit: '1000', total: 'false'})).total, undefined)
    assert.deepEqual(await walk({}, 1000), names)
  })

  test('a prefix, pages of an odd size', async () => {
    const expected = names.filter((name) => name.startsWith('videos/2024/'))
    assert.equal(expected.length, FILES / 5)
    assert.deepEqual(await walk({prefix: 'videos/2024/'}, 333), expected)
    assert.equal((await page({prefix: 'videos/2024/', limit: '1', total: 'true'})).total, expected.length)
    assert.deepEqual(await walk({prefix: '日本/映像-99'}, 50), names.filter((name) => name.startsWith('日本/映像-99')))
  })

  test('a search is a plain substring: ASCII letters in either case, % and _ only themselves', async () => {
    assert.deepEqual(await walk({search: 'CLIP-00012'}, 7), names.filter((name) => name.toLowerCase().includes('clip-00012')))
    const literal = await walk({search: '50%_'}, 1000)
    assert.deepEqual(literal, names.filter((name) => name.includes('50%_')))
    assert.equal(literal.length, FILES / 1000)
    assert.deepEqual(await walk({prefix: 'videos/2025/', search: '99.'}, 10), names.filter((name) => name.startsWith('videos/2025/') && name.includes('99.')))
    assert.deepEqual(await page({search: 'no such name', limit: '10', total: 'true'}), {files: [], total: 0})
    assert.deepEqual(await page({search: 'no such name', limit: '10'}), {files: []})
  })

  test('a page seeks from the later of its prefix and its after, as UTF-8 bytes order them', () => {
    // One lower bound for the index walk: with two, SQLite sought by the prefix and stepped over
    // every name before `after` (docs/performance.md), so a walk of every page was O(N²).
    assert.equal(pageParameters({prefix: 'b/', after: 'a'}).from, 'b/')
    assert.equal(pageParameters({prefix: 'b/', after: 'b/x'}).from, 'b/x')
    assert.equal(pageParameters({after: 'b/x'}).from, 'b/x')
    // U+1F600 sorts after U+FF61 as UTF-8 (F0… > EF…) but before it as UTF-16 (D83D < FF61).
    assert.equal(pageParameters({prefix: 'a\uFF61', after: 'a\u{1F600}'}).from, 'a\u{1F600}')
    assert.equal(pageParameters({prefix: 'a\u{1F600}', after: 'a\uFF61'}).from, 'a\u{1F600}')
    assert.match(FILES_PAGE_SQL, /name >= @from AND/)
    assert.doesNotMatch(FILES_PAGE_SQL, /@prefix/)
  })

  test('each file of a page has its health and holders; without limit, every file as before', async () => {
    const [file] = (await page({prefix: 'z-', limit: '1'})).files
    assert.equal(file!.health, 'missing')
    assert.deepEqual(file!.keepers, [])
    const all = await page({total: 'true'})
    assert.equal(all.files.length, FILES)
    assert.equal(all.next, undefined)
    assert.equal(all.total, undefined)
  })

  test('GET /fsck?brief=true counts every file and lists none (the dashboard polls it)', async () => {
    const answer = await app.inject({method: 'GET', url: '/fsck?brief=true'})
    assert.equal(answer.statusCode, 200, answer.body)
    const report = answer.json<{status: string; files: unknown[]; summary: {files: number; missing: number}; setAside?: unknown}>()
    assert.deepEqual({status: report.status, files: report.files, setAside: report.setAside}, {status: 'missing', files: [], setAside: undefined})
    assert.deepEqual({files: report.summary.files, missing: report.summary.missing}, {files: FILES, missing: FILES})
  })

  test('a limit out of range, or a total that is not a boolean, is refused', async () => {
    for (const query of ['limit=0', 'limit=1001', 'limit=x', 'limit=10&total=maybe']) {
      const answer = await app.inject({method: 'GET', url: `/files?${query}`})
      assert.equal(answer.statusCode, 400, query)
      assert.equal(answer.json<{error: string}>().error, 'DFS_ERR_BAD_REQUEST')
    }
  })
})
