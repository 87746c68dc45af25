// The order npm test runs the files in ranks them and never drops one: every compiled test file
// is handed to node --test exactly once, and the ranking names only files that exist.

import assert from 'node:assert/strict'
import {readdirSync} from 'node:fs'
import {fileURLToPath} from 'node:url'
import {test} from 'node:test'

import {SLOWEST_FIRST, staleNames, suiteOrder} from './suite-order.js'

const built = readdirSync(fileURLToPath(new URL('.', import.meta.url))).filter((name) => name.endsWith('.test.js'))

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
