import assert from 'node:assert/strict'
import {test} from 'node:test'

import {newId} from '../src/lib/ids.js'

// One base64url id in 64 starts with "-": among 20,000 such, at least one does with a probability of
// 1 - (63/64)^20000, one minus about 10^-137. Token ids are typed as arguments (dfs token revoke ID).
test('an id never starts with "-", which a command line would take for a flag', () => {
  for (let index = 0; index < 20_000; index++) {
    const id = newId()
    assert.match(id, /^[A-Za-z0-9_][A-Za-z0-9_-]{15}$/, id)
  }

  for (const bytes of [6, 9]) assert.match(newId(bytes), new RegExp(`^[A-Za-z0-9_][A-Za-z0-9_-]{${(bytes * 4) / 3 - 1}}$`))
})
