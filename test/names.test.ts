import assert from 'node:assert/strict'
import {describe, test} from 'node:test'

import {nameProblem} from '../src/lib/names.js'

describe('file names are never usable as paths', () => {
  test('accepts ordinary names, with spaces and non-ASCII letters', () => {
    for (const name of ['video.mp4', 'holiday 2024.mp4', 'été.mp4', 'a', 'x'.repeat(255), 'ü'.repeat(127)]) {
      assert.equal(nameProblem(name), undefined, name)
    }
  })

  test('refuses empty names, dot names, separators, control characters and names over 255 bytes', () => {
    const bad = ['', '.', '..', '../x', 'a/..', 'a/b', 'a\\b', 'tab\there', 'nul\u0000', 'del\u007f', 'c1\u0085', 'x'.repeat(256), 'ü'.repeat(128), ' lead', 'trail ']
    for (const name of bad) assert.notEqual(nameProblem(name), undefined, JSON.stringify(name))
    assert.notEqual(nameProblem(42), undefined)
  })
})
