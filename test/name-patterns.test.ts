import assert from 'node:assert/strict'
import {rm} from 'node:fs/promises'
import {describe, test} from 'node:test'

import fc from 'fast-check'

import {folderPrefix, prefixUpperBound, selectNames} from '../src/lib/name-patterns.js'
import {MasterTable} from '../src/roles/master/table.js'
import {tempDir} from './helpers/cluster.js'

describe('which names a pattern selects', () => {
  const names = ['videos/a.mp4', 'videos/b.mp4', 'videos/2024/c.mp4', 'videos/2024/trip/d.mp4', 'videos.mp4', 'video/x.mp4', 'audio/a.mp3', 'a.mp4']
  const selected = (pattern?: string) => names.filter((name) => selectNames(pattern).matches(name))

  test('a plain pattern is a prefix, and no pattern is every name', () => {
    assert.deepEqual(selected(), names)
    assert.deepEqual(selected('videos/'), ['videos/a.mp4', 'videos/b.mp4', 'videos/2024/c.mp4', 'videos/2024/trip/d.mp4'])
    assert.deepEqual(selected('video'), ['videos/a.mp4', 'videos/b.mp4', 'videos/2024/c.mp4', 'videos/2024/trip/d.mp4', 'videos.mp4', 'video/x.mp4'])
    assert.equal(selectNames('videos/').prefix, 'videos/')
  })

  test('"*" and "?" stay within one folder, "**" crosses folders (none or many)', () => {
    assert.deepEqual(selected('videos/*.mp4'), ['videos/a.mp4', 'videos/b.mp4'])
    assert.deepEqual(selected('videos/**.mp4'), ['videos/a.mp4', 'videos/b.mp4', 'videos/2024/c.mp4', 'videos/2024/trip/d.mp4'])
    assert.deepEqual(selected('videos/**/*.mp4'), ['videos/a.mp4', 'videos/b.mp4', 'videos/2024/c.mp4', 'videos/2024/trip/d.mp4'])
    assert.deepEqual(selected('videos/*/c.mp4'), ['videos/2024/c.mp4'])
    assert.deepEqual(selected('*.mp4'), ['videos.mp4', 'a.mp4'])
    assert.deepEqual(selected('?.mp4'), ['a.mp4'])
    assert.deepEqual(selected('**/a.mp*'), ['videos/a.mp4', 'audio/a.mp3', 'a.mp4'])
    // The master is asked for the part before the first wildcard only.
    assert.equal(selectNames('videos/*/c.mp4').prefix, 'videos/')
    assert.equal(selectNames('*.mp4').prefix, '')
  })

  test('characters that mean something in a regular expression are taken literally', () => {
    const odd = ['a+b (1).mp4', 'a+b (1)xmp4', 'aab (1).mp4']
    assert.deepEqual(odd.filter((name) => selectNames('a+b (1)*.mp4').matches(name)), ['a+b (1).mp4'])
  })

  test('a folder means the names below it, never a sibling that shares its start', () => {
    assert.equal(folderPrefix('videos'), 'videos/')
    assert.equal(folderPrefix('videos/'), 'videos/')
    assert.equal(folderPrefix(''), '')
  })

  test('the upper bound of a prefix: every name with the prefix is below it, every other name at or above the prefix is not', () => {
    assert.equal(prefixUpperBound('ab'), 'ac')
    assert.equal(prefixUpperBound('a\u{10ffff}'), 'b')
    assert.equal(prefixUpperBound('\u{d7ff}'), '\u{e000}')
    assert.equal(prefixUpperBound('\u{10ffff}'), undefined)
    const char = fc.oneof(fc.constantFrom('a', 'b', '/', '\u{d7ff}', '\u{e000}', '\u{ffff}', '\u{10000}', '\u{10ffff}'), fc.string({unit: 'grapheme', minLength: 1, maxLength: 1}))
    const text = fc.array(char, {maxLength: 4}).map((chars) => chars.join(''))
    fc.assert(
      fc.property(text, text, (prefix, name) => {
        const bound = prefixUpperBound(prefix)
        const inRange = codePointCompare(name, prefix) >= 0 && (bound === undefined || codePointCompare(name, bound) < 0)
        assert.equal(inRange, name.startsWith(prefix), `${JSON.stringify(prefix)} ${JSON.stringify(name)} ${JSON.stringify(bound)}`)
      }),
      {seed: 11, numRuns: 5000},
    )
  })

  test("the master's table lists a prefix as a range of names: the same names a scan finds", async () => {
    const dir = await tempDir()
    const table = new MasterTable(dir)
    try {
      const stored = ['a', 'a/b', 'a/b/c', 'a0', 'a/\u{10ffff}', 'a\u{10ffff}x', 'b', 'é/x', 'é/\u{e000}', '\u{d7ff}/z', '\u{10ffff}', 'A/b']
      for (const [index, name] of stored.entries()) table.insertFile({fileId: `f${index}`, name, size: 1, sha256: '0'.repeat(64), createdAt: 0}, [])
      for (const prefix of ['', 'a', 'a/', 'a/b', 'a\u{10ffff}', 'é/', '\u{d7ff}', '\u{10ffff}', 'A', 'z']) {
        const expected = stored.filter((name) => name.startsWith(prefix)).sort(codePointCompare)
        assert.deepEqual(table.filesPage({prefix}).files.map((file) => file.name), expected, JSON.stringify(prefix))
      }
    } finally {
      table.close()
      await rm(dir, {recursive: true, force: true})
    }
  })
})

/** The order SQLite keeps TEXT in (UTF-8 bytes, so code points), unlike JavaScript's UTF-16 `<`. */
function codePointCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}
