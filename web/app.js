// The dfs dashboard: keepers, files, uploads and playback, from the master's JSON API
// (docs/protocol.md). Every name shown comes from users, so text goes in with textContent only.

import {Sha256} from './sha256.js'

const POLL_MS = 1500
const PAGE_SIZE = 50
// Slices hashed at a time: the page never holds a whole file.
const HASH_SLICE = 4 * 1024 * 1024
const TOKEN_KEY = 'dfs-token'
const PLAYABLE = /\.(mp4|m4v|mov|webm|ogv|mkv|mp3|m4a|ogg|wav)$/i

const $ = (id) => document.getElementById(id)
const state = {prefix: '', search: '', after: '', pages: [], next: undefined, keepers: new Map(), timer: undefined, polling: false, again: false, pollFailed: false, open: undefined}

// ---- talking to the master -------------------------------------------------------------------

/** Where the token is kept: this tab's session only, so it leaves with the tab. */
const tokens = sessionStorage

function token() {
  return tokens.getItem(TOKEN_KEY) ?? ''
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

async function api(method, path, body) {
  const headers = {}
  if (token()) headers.authorization = `Bearer ${token()}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  const response = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)})
  const answer = await response.json().catch(() => ({}))
  if (!response.ok) throw new ApiError(response.status, answer.error ?? 'DFS_ERR_BAD_RESPONSE', answer.message ?? `${method} ${path} answered ${response.status}`)
  return answer
}

const fileUrl = (name) => `/files/${encodeURIComponent(name)}`

// ---- messages --------------------------------------------------------------------------------

function say(text, isError = false) {
  const message = $('message')
  message.textContent = text
  message.classList.toggle('error', isError)
  message.hidden = text === ''
}

/** An error as one line; a refused token says how to get one. */
function describe(error) {
  if (error instanceof ApiError && error.status === 401) return `${error.message} (log in above with a client token)`
  return error instanceof Error ? error.message : String(error)
}

// ---- formatting ------------------------------------------------------------------------------

function bytes(count) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let value = count
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }

  return `${unit === 0 ? value : value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`
}

function ago(iso) {
  if (!iso) return 'never'
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000)
  if (seconds < 60) return `${seconds.toFixed(1)} s ago`
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`
  return new Date(iso).toLocaleString()
}

function duration(seconds) {
  const whole = Math.round(seconds)
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, '0')}`
}

/** An element with attributes and children (strings become text, never HTML). */
function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag)
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue
    if (key === 'class') element.className = value
    else if (key.startsWith('on')) element.addEventListener(key.slice(2), value)
    // Through the CSSOM: the page's Content-Security-Policy refuses style attributes.
    else if (key === 'width') element.style.width = value
    else element.setAttribute(key, value === true ? '' : value)
  }

  element.append(...children.filter((child) => child !== undefined && child !== null))
  return element
}

const badge = (text, kind = text) => el('span', {class: `badge ${kind}`}, text)

// ---- login -----------------------------------------------------------------------------------

/** What a token says of itself (its scope and expiry); the master checks it, the page only shows it. */
function claims(value) {
  try {
    const payload = value.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')
    return JSON.parse(atob(payload))
  } catch {
    return undefined
  }
}

function showLogin() {
  const current = token()
  const scope = current ? (claims(current)?.scope ?? 'unknown scope') : undefined
  $('who').textContent = current ? `logged in (${scope})` : ''
  $('token').hidden = current !== ''
  $('login-button').hidden = current !== ''
  $('logout').hidden = current === ''
}

$('login').addEventListener('submit', (event) => {
  event.preventDefault()
  const value = $('token').value.trim()
  if (value === '') return
  tokens.setItem(TOKEN_KEY, value)
  $('token').value = ''
  say('')
  showLogin()
  refresh()
})
$('logout').addEventListener('click', () => {
  tokens.removeItem(TOKEN_KEY)
  showLogin()
  refresh()
})

// ---- keepers and the whole -------------------------------------------------------------------

function renderKeepers(keepers) {
  state.keepers = new Map(keepers.map((keeper) => [keeper.id, keeper]))
  const rows = keepers.map((keeper) => {
    const total = keeper.storedBytes + keeper.freeBytes
    const used = total === 0 ? 0 : (100 * keeper.storedBytes) / total
    const stateText = keeper.drain ?? (keeper.alive ? 'alive' : 'dead')
    return el(
      'tr',
      {'data-keeper': keeper.id, 'data-alive': String(keeper.alive)},
      el('td', {title: keeper.url}, keeper.id),
      el('td', {}, keeper.zone),
      el('td', {}, badge(keeper.alive ? stateText : 'dead')),
      el('td', {}, ago(keeper.lastHeartbeat)),
      el('td', {}, String(keeper.files)),
      el('td', {}, el('span', {class: 'bar', title: `${used.toFixed(1)}% of what this keeper may use`}, el('span', {width: `${keeper.storedBytes > 0 ? Math.max(used, 1) : 0}%`})), `${bytes(keeper.storedBytes)} / ${bytes(keeper.freeBytes)} free`),
      el('td', {}, String(keeper.activeTransfers)),
    )
  })
  $('keepers').tBodies[0].replaceChildren(...rows)
}

function renderSummary(report, keepers) {
  const {summary} = report
  const transfers = keepers.reduce((sum, keeper) => sum + keeper.activeTransfers, 0)
  const parts = [`${summary.aliveKeepers} of ${summary.keepers} keepers alive`, `${summary.files} files`]
  if (summary.underReplicated > 0) parts.push(`${summary.underReplicated} under-replicated (repairing)`)
  if (summary.missing > 0) parts.push(`${summary.missing} missing`)
  if (summary.singleZone > 0) parts.push(`${summary.singleZone} in one zone`)
  if (transfers > 0) parts.push(`${transfers} transfers in flight`)
  if (report.recovering) parts.push('rebuilding the table')
  $('summary').textContent = `${report.status} · ${parts.join(' · ')}`
  $('summary').dataset.status = report.status
}

// ---- files -----------------------------------------------------------------------------------

function renderFiles(page) {
  const rows = page.files.map((file) => {
    const holders = file.keepers.map((id) => el('span', {class: `holder${state.keepers.get(id)?.alive ? '' : ' gone'}`, title: state.keepers.get(id)?.alive ? 'alive' : 'dead'}, id))
    const media = file.media ? ` · ${duration(file.media.durationSeconds ?? 0)}` : ''
    return el(
      'tr',
      {'data-file': file.name, 'data-health': file.health, 'data-replicas': String(file.replicas)},
      el('td', {class: 'name'}, el('button', {type: 'button', class: 'link open', onclick: () => openFile(file.name)}, file.name), media),
      el('td', {title: `${file.size} bytes`}, bytes(file.size)),
      el('td', {}, badge(file.health), ` ${file.replicas}/${file.target}`),
      el('td', {}, ...holders),
      el('td', {title: file.createdAt}, new Date(file.createdAt).toLocaleString()),
      el('td', {}, el('button', {type: 'button', class: 'delete', onclick: () => remove(file.name)}, 'delete')),
    )
  })
  $('files').tBodies[0].replaceChildren(...rows)
  state.next = page.next
  const first = state.pages.length * PAGE_SIZE
  $('file-count').textContent = `(${page.total})`
  $('page').textContent = page.total === 0 ? 'no files' : `${first + 1}–${first + page.files.length} of ${page.total}`
  $('next').disabled = page.next === undefined
  $('first').disabled = state.pages.length === 0
}

function listPath() {
  // The page shows "of N": it asks for the count (one per poll; a walk of every page would not).
  const query = new URLSearchParams({limit: String(PAGE_SIZE), total: 'true'})
  if (state.prefix) query.set('prefix', state.prefix)
  if (state.search) query.set('search', state.search)
  if (state.after) query.set('after', state.after)
  return `/files?${query}`
}

$('next').addEventListener('click', () => {
  if (state.next === undefined) return
  state.pages.push(state.after)
  state.after = state.next
  refresh()
})
$('first').addEventListener('click', () => {
  state.pages = []
  state.after = ''
  refresh()
})

let filterTimer
$('filter').addEventListener('input', () => {
  clearTimeout(filterTimer)
  filterTimer = setTimeout(() => {
    state.prefix = $('prefix').value
    state.search = $('search').value
    state.pages = []
    state.after = ''
    refresh()
  }, 200)
})
$('filter').addEventListener('submit', (event) => event.preventDefault())

// ---- live updates ----------------------------------------------------------------------------

/** One round of polling; the next is planned only when it is done, so that rounds never pile up. */
async function refresh() {
  clearTimeout(state.timer)
  if (state.polling) {
    state.again = true
    return
  }

  state.polling = true
  try {
    const [{keepers}, report, page] = await Promise.all([api('GET', '/keepers'), api('GET', '/fsck?brief=true'), api('GET', listPath())])
    renderKeepers(keepers)
    renderSummary(report, keepers)
    renderFiles(page)
    if (state.open) {
      const gone = (error) => (error instanceof ApiError && error.status === 404 ? undefined : Promise.reject(error))
      const info = await api('GET', fileUrl(state.open.name)).catch(gone)
      if (info) showDetails(info, state.open.link)
      else closePlayer()
    }
    // A failed round's message goes once a round succeeds; others stay until replaced.
    if (state.pollFailed) say('')
    state.pollFailed = false
  } catch (error) {
    $('summary').textContent = error instanceof ApiError && error.status === 401 ? 'log in to see this cluster' : 'cannot reach the master'
    say(describe(error), true)
    state.pollFailed = true
  } finally {
    state.polling = false
    const again = state.again
    state.again = false
    if (again) refresh()
    else state.timer = setTimeout(refresh, document.hidden ? POLL_MS * 4 : POLL_MS)
  }
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden) refresh()
})

// ---- play, download, details -----------------------------------------------------------------

async function openFile(name) {
  try {
    const [info, link] = await Promise.all([api('GET', fileUrl(name)), api('GET', `${fileUrl(name)}/url?ttl=3600`)])
    state.open = {name, link}
    showDetails(info, link)
    const player = $('player')
    player.removeAttribute('poster')
    if (info.media?.width) {
      // A still at a tenth of the video (5 s in at most): its poster frame, in the details and on the player.
      void posterFrame(link.url, Math.min(5, (info.media.durationSeconds ?? 0) / 10)).then((image) => {
        if (!image || state.open?.name !== name) return
        player.poster = image
        state.open.poster = image
        showDetails(info, link)
      })
    }

    if (PLAYABLE.test(name) || info.media) {
      $('player-section').hidden = false
      $('player-title').textContent = name
      player.hidden = false
      // The keeper answers the player's Range requests itself; the signed URL needs no other credential.
      player.src = link.url
      player.dataset.file = name
      await player.play().catch(() => {})
    } else {
      player.pause()
      player.hidden = true
      $('player-section').hidden = false
      $('player-title').textContent = name
      // Another file downloads: the keeper serves it, with the read grant in the URL.
      el('a', {href: link.url, download: name}).click()
    }
  } catch (error) {
    say(describe(error), true)
  }
}

function showDetails(info, link) {
  const rows = [
    ['size', `${bytes(info.size)} (${info.size} bytes)`],
    ['sha256', info.sha256],
    ['health', `${info.health}, ${info.replicas.filter((replica) => replica.alive && !replica.draining).length}/${info.target}`],
    ['replicas', info.replicas.map((replica) => `${replica.keeper}${replica.alive ? '' : ' (dead)'}${replica.zone ? ` [${replica.zone}]` : ''}`).join(', ')],
    ['created', new Date(info.createdAt).toLocaleString()],
    ['link', el('a', {href: link.url, download: info.name}, 'download'), link.expiresAt ? ` (good until ${new Date(link.expiresAt).toLocaleTimeString()})` : ''],
  ]
  const media = info.media
  if (media) {
    rows.push(['container', media.container ?? '?'])
    if (media.durationSeconds != null) rows.push(['duration', `${duration(media.durationSeconds)} (${media.durationSeconds.toFixed(1)} s)`])
    if (media.width && media.height) rows.push(['resolution', `${media.width}×${media.height}`])
    rows.push(['codecs', [media.videoCodec, media.audioCodec].filter(Boolean).join(' + ') || '?'])
    if (media.bitrate) rows.push(['bitrate', `${Math.round(media.bitrate / 1000)} kbit/s`])
    if (media.fastStart === false) rows.push(['playback', el('span', {class: 'warning'}, 'moov at the end: a browser must fetch the end before it plays')])
  }

  // The open file's poster frame, once drawn (the details are drawn again as the file changes).
  if (state.open?.poster && state.open.name === info.name) rows.push(['poster', el('img', {id: 'poster', src: state.open.poster, alt: `a frame of ${info.name}`})])
  $('details').replaceChildren(...rows.flatMap(([term, ...value]) => [el('dt', {}, term), el('dd', {}, ...value)]))
}

/**
 * A still of the video at `seconds`, as a data: URL (undefined if it cannot be had): the keeper
 * serves the bytes to the page's origin with CORS, so the frame may be drawn and read back.
 */
function posterFrame(url, seconds) {
  return new Promise((resolve) => {
    const video = document.createElement('video')
    video.muted = true
    video.preload = 'auto'
    video.crossOrigin = 'anonymous'
    // In the document (out of sight): Chromium decodes no frame for a video outside it.
    Object.assign(video.style, {position: 'fixed', left: '-10000px', width: '320px'})
    document.body.append(video)
    const done = (image) => {
      video.remove()
      video.removeAttribute('src')
      video.load()
      resolve(image)
    }
    // The media fragment starts the video at that time: its first decoded frame is the still.
    video.addEventListener('loadeddata', () => {
      try {
        const canvas = document.createElement('canvas')
        const scale = Math.min(1, 320 / video.videoWidth)
        canvas.width = Math.round(video.videoWidth * scale)
        canvas.height = Math.round(video.videoHeight * scale)
        canvas.getContext('2d').drawImage(video, 0, 0, canvas.width, canvas.height)
        done(canvas.toDataURL('image/jpeg', 0.8))
      } catch {
        done(undefined)
      }
    }, {once: true})
    video.addEventListener('error', () => done(undefined), {once: true})
    video.src = `${url}#t=${seconds}`
  })
}

function closePlayer() {
  state.open = undefined
  $('player').pause()
  $('player').removeAttribute('src')
  $('player-section').hidden = true
}

async function remove(name) {
  if (!confirm(`Delete "${name}" from every keeper? This cannot be undone.`)) return
  try {
    await api('DELETE', fileUrl(name))
    if (state.open?.name === name) closePlayer()

    say(`deleted "${name}"`)
    refresh()
  } catch (error) {
    say(describe(error), true)
  }
}

// ---- uploads ---------------------------------------------------------------------------------

async function hashFile(file, onProgress) {
  const hasher = new Sha256()
  for (let offset = 0; offset < file.size; offset += HASH_SLICE) {
    hasher.update(new Uint8Array(await file.slice(offset, offset + HASH_SLICE).arrayBuffer()))
    onProgress(Math.min(file.size, offset + HASH_SLICE))
  }

  return hasher.digest()
}

/** Sends the file's bytes to the keeper a ticket names; resolves with the keeper's answer. */
function sendToKeeper(file, ticket, sha256, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open('PUT', `${ticket.keeper.url}${fileUrl(file.name)}?upload=${encodeURIComponent(ticket.uploadId)}`)
    xhr.setRequestHeader('content-type', 'application/octet-stream')
    xhr.setRequestHeader('x-dfs-sha256', sha256)
    xhr.setRequestHeader('x-dfs-size', String(file.size))
    if (ticket.grant) xhr.setRequestHeader('x-dfs-grant', ticket.grant)
    xhr.upload.addEventListener('progress', (event) => onProgress(event.loaded))
    xhr.addEventListener('load', () => {
      let answer = {}
      try {
        answer = JSON.parse(xhr.responseText)
      } catch {}

      if (xhr.status === 201) resolve(answer)
      else reject(new ApiError(xhr.status, answer.error ?? 'DFS_ERR_BAD_RESPONSE', answer.message ?? `keeper ${ticket.keeper.id} answered ${xhr.status}`))
    })
    xhr.addEventListener('error', () => reject(new ApiError(0, 'DFS_ERR_KEEPER_UNREACHABLE', `keeper ${ticket.keeper.id} at ${ticket.keeper.url} did not answer`)))
    xhr.send(file)
  })
}

// Failures of one keeper that another may not have: the upload goes to another one, as dfs put does.
const ELSEWHERE = new Set(['DFS_ERR_KEEPER_UNREACHABLE', 'DFS_ERR_INSUFFICIENT_STORAGE', 'DFS_ERR_SHUTTING_DOWN', 'DFS_ERR_MASTER_UNREACHABLE', 'DFS_ERR_UNKNOWN_UPLOAD'])

async function upload(file) {
  const progress = el('progress', {max: String(Math.max(file.size, 1)), value: '0'})
  const status = el('span', {}, 'hashing')
  const item = el('li', {'data-upload': file.name}, el('span', {}, file.name), progress, status)
  $('uploads').append(item)
  try {
    const sha256 = await hashFile(file, (done) => {
      progress.value = done
      status.textContent = `hashing ${bytes(done)} of ${bytes(file.size)}`
    })
    const exclude = []
    for (;;) {
      const ticket = await api('POST', '/uploads', {name: file.name, size: file.size, sha256, ...(exclude.length > 0 ? {exclude} : {})})
      status.textContent = `to ${ticket.keeper.id}`
      try {
        await sendToKeeper(file, ticket, sha256, (sent) => {
          progress.value = sent
          status.textContent = `to ${ticket.keeper.id}: ${bytes(sent)} of ${bytes(file.size)}`
        })
        break
      } catch (error) {
        if (!(error instanceof ApiError && ELSEWHERE.has(error.code)) || exclude.length >= 8) throw error
        exclude.push(ticket.keeper.id)
      }
    }

    progress.value = file.size
    status.textContent = 'stored'
    item.dataset.state = 'stored'
    refresh()
  } catch (error) {
    status.textContent = `failed: ${describe(error)}`
    item.dataset.state = 'failed'
  }
}

function uploadAll(files) {
  for (const file of files) void upload(file)
}

const drop = $('drop')
drop.addEventListener('dragover', (event) => {
  event.preventDefault()
  drop.classList.add('over')
})
drop.addEventListener('dragleave', () => drop.classList.remove('over'))
drop.addEventListener('drop', (event) => {
  event.preventDefault()
  drop.classList.remove('over')
  uploadAll(event.dataTransfer?.files ?? [])
})
$('file-input').addEventListener('change', (event) => {
  uploadAll(event.target.files)
  event.target.value = ''
})

showLogin()
refresh()
