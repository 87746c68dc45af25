// The order npm test runs the files in ranks them and never drops one: every compiled test file
// is handed to node --test exactly once, and the ranking names only files that exist.

import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {readdirSync} from 'node:fs'
import {copyFile, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'
import {test} from 'node:test'

import {SLOWEST_FIRST, staleNames, suiteOrder} from './suite-order.js'

const here = fileURLToPath(new URL('.', import.meta.url))
const built = readdirSync(here).filter((name) => name.endsWith('.test.js'))

test('every test file runs exactly once, the ranked ones first in their order, then the others by name', () => {
  const order = suiteOrder(built)
  assert.deepEqual([...order].sort(), [...built].sort())
  const ranked = SLOWEST_FIRST.map((name) => name.replace(/\.ts$/, '.js'))
  assert.deepEqual(order.slice(0, ranked.length), ranked)
  const rest = order.slice(ranked.length)
  assert.deepEqual(rest, [...rest].sort())
  assert.ok(order.includes('suite-order.test.js'), 'a file the list does not rank runs too')
})

test('every file the ranking names is a test file of test/', () => {
  assert.deepEqual(staleNames(built), [])
})

test('a name ranked twice or not there, and a file nobody ranked, change nothing of what runs', () => {
  const files = ['c.test.js', 'a.test.js', 'b.test.js']
  assert.deepEqual(suiteOrder(files, ['b.test.ts', 'gone.test.ts', 'b.test.ts']), ['b.test.js', 'a.test.js', 'c.test.js'])
  assert.deepEqual(staleNames(files, ['b.test.ts', 'gone.test.ts']), ['gone.test.ts'])
})

test('run-suite starts every test file beside it in that order (node --test would sort them), and fails if one fails', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dfs-suite-order-'))
  try {
    await writeFile(join(dir, 'package.json'), '{"type": "module"}')
    for (const file of ['run-suite.js', 'suite-order.js']) await copyFile(join(here, file), join(dir, file))
    const log = join(dir, 'started')
    const fixture = (name: string, body = '') =>
      writeFile(join(dir, name), `import {appendFileSync} from 'node:fs'\nimport {test} from 'node:test'\ntest('${name}', () => {\n  appendFileSync(${JSON.stringify(log)}, '${name}\\n')\n  ${body}\n})\n`)
    // One file the ranking names (it starts first), two it does not (by name after it).
    const ranked = SLOWEST_FIRST[0]!.replace(/\.ts$/, '.js')
    for (const name of ['zz.test.js', ranked, 'aa.test.js']) await fixture(name)
    // As npm runs it: not as a child of this test runner (NODE_TEST_CONTEXT would make it report to us).
    const env = {...process.env, NODE_TEST_CONTEXT: undefined}
    const suite = () => promisify(execFile)(process.execPath, [join(dir, 'run-suite.js'), '--test-concurrency=1'], {cwd: dir, env})
    await suite()
    assert.deepEqual((await readFile(log, 'utf8')).trim().split('\n'), [ranked, 'aa.test.js', 'zz.test.js'])

    await fixture('failing.test.js', "throw new Error('failing on purpose')")
    await assert.rejects(suite(), (error: {code?: number}) => error.code === 1)
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
})
