// Uploads one file to a tus 1.0 endpoint with the unmodified tus-js-client, as a Node app would.
//
//   node tus_upload.mjs --endpoint URL/files/ --token T --file PATH [--abort-at 0.4] [--chunk-size BYTES]
//                       [--parallel N]
//
// With --parallel N (N > 1), tus-js-client's parallelUploads: N partial uploads side by side, then the
// final upload that concatenates them (the tus concatenation extension).
//
// With --abort-at, the first Upload is aborted once its progress passes that fraction, and a new
// Upload object (a fresh process would do the same) resumes from the upload URL. Only the upload
// URL travels between the two: no endpoint is given to the second, so a failed resume is an error
// rather than a silent restart from byte 0.
//
// Prints one JSON object per line on stdout:
//   {"event":"partial","url":...}                   a partial upload created (--parallel)
//   {"event":"created","url":...,"videoId":...}     the upload of the video (with --parallel: the final one)
//   {"event":"aborted","bytesSent":...,"fraction":...,"acknowledged":...}
//                                                    acknowledged: the offset the server last confirmed to a PATCH
//   {"event":"resumed","offset":...,"heads":...}     offset: where the resumed upload's first accepted PATCH began
//   {"event":"rejected","method":...,"status":...}   a non-2xx answer (tus-js-client retries 409/423/5xx)
//   {"event":"success","url":...,"bytes":...,"ms":...}   ms: from start() to onSuccess
//   {"event":"error","message":...}                  and exit status 1
import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'

import { Upload } from 'tus-js-client'

const RETRY_DELAYS_MS = [0, 200, 500, 1000]

function emit(event) {
  // stdout is a pipe to the test: writes are synchronous on Linux, so nothing is lost on exit
  process.stdout.write(`${JSON.stringify(event)}\n`)
}

function fail(message) {
  emit({ event: 'error', message: String(message) })
  process.exit(1)
}

function readOptions() {
  const { values } = parseArgs({
    options: {
      endpoint: { type: 'string' },
      token: { type: 'string' },
      file: { type: 'string' },
      'abort-at': { type: 'string' },
      'chunk-size': { type: 'string' },
      parallel: { type: 'string' },
    },
  })
  for (const required of ['endpoint', 'token', 'file']) {
    if (!values[required]) fail(`--${required} is required`)
  }
  const abortAt = values['abort-at'] === undefined ? null : Number(values['abort-at'])
  if (abortAt !== null && !(abortAt > 0 && abortAt < 1)) fail('--abort-at must be a fraction between 0 and 1')
  const chunkSize = values['chunk-size'] === undefined ? Number.POSITIVE_INFINITY : Number(values['chunk-size'])
  if (!(chunkSize > 0)) fail('--chunk-size must be a positive number of bytes')
  const parallel = values.parallel === undefined ? 1 : Number(values.parallel)
  if (!(Number.isInteger(parallel) && parallel >= 1)) fail('--parallel must be a whole number of uploads, 1 or more')
  if (parallel > 1 && abortAt !== null) fail('--parallel and --abort-at do not go together')
  return { endpoint: values.endpoint, token: values.token, file: values.file, abortAt, chunkSize, parallel }
}

function contentType(file) {
  const byExtension = { '.mkv': 'video/x-matroska', '.mp4': 'video/mp4', '.webm': 'video/webm', '.mov': 'video/quicktime' }
  return byExtension[path.extname(file).toLowerCase()] ?? 'application/octet-stream'
}

// Options both Upload objects share. A fs.ReadStream with a path lets tus-js-client 4 re-open the
// file at any offset (its FileSource), which is what resuming needs; a plain stream could not seek back.
function commonOptions(args, onAfterResponse) {
  return {
    headers: { Authorization: `Bearer ${args.token}` },
    metadata: {
      filename: path.basename(args.file),
      filetype: contentType(args.file),
      title: `tus-js-client ${path.basename(args.file)}`,
    },
    chunkSize: args.chunkSize,
    retryDelays: RETRY_DELAYS_MS,
    onAfterResponse(req, res) {
      const status = res.getStatus()
      if (status < 200 || status >= 300) emit({ event: 'rejected', method: req.getMethod(), status })
      onAfterResponse?.(req, res)
    },
  }
}

// Resolves with the upload URL once aborted (or finished, without --abort-at).
function firstAttempt(args, size) {
  return new Promise((resolve, reject) => {
    let aborted = false
    let acknowledged = 0
    const upload = new Upload(fs.createReadStream(args.file), {
      ...commonOptions(args, (req, res) => {
        if (req.getMethod() === 'POST' && res.getStatus() === 201) {
          if (res.getHeader('Video-Id')) emit({ event: 'created', url: res.getHeader('Location'), videoId: res.getHeader('Video-Id') })
          else emit({ event: 'partial', url: res.getHeader('Location') })
        }
        if (req.getMethod() === 'PATCH' && res.getStatus() === 204) {
          acknowledged = Number(res.getHeader('Upload-Offset'))
        }
      }),
      endpoint: args.endpoint,
      // parallelUploads takes the size from the file (its FileSource), and refuses uploadSize
      ...(args.parallel > 1 ? { parallelUploads: args.parallel } : { uploadSize: size }),
      onProgress(bytesSent, bytesTotal) {
        if (args.abortAt === null || aborted || bytesSent < args.abortAt * bytesTotal) return
        aborted = true
        upload.abort().then(() => {
          emit({ event: 'aborted', bytesSent, fraction: bytesSent / bytesTotal, acknowledged })
          resolve({ url: upload.url, finished: false })
        }, reject)
      },
      onSuccess() {
        if (!aborted) resolve({ url: upload.url, finished: true })
      },
      onError: reject,
    })
    upload.start()
  })
}

function resumeAttempt(args, url, size) {
  return new Promise((resolve, reject) => {
    let heads = 0
    let resumed = false
    const upload = new Upload(fs.createReadStream(args.file), {
      ...commonOptions(args, (req, res) => {
        const ok = res.getStatus() >= 200 && res.getStatus() < 300
        if (req.getMethod() === 'HEAD') heads += 1
        if (req.getMethod() === 'PATCH' && ok && !resumed) {
          resumed = true
          emit({ event: 'resumed', offset: Number(req.getHeader('Upload-Offset')), heads })
        }
      }),
      uploadUrl: url,
      uploadSize: size,
      onSuccess: () => resolve(upload.url),
      onError: reject,
    })
    upload.start()
  })
}

async function main() {
  const args = readOptions()
  const size = (await fs.promises.stat(args.file)).size
  const started = performance.now()
  const first = await firstAttempt(args, size)
  let url = first.url
  if (!first.finished) url = await resumeAttempt(args, first.url, size)
  emit({ event: 'success', url, bytes: size, ms: performance.now() - started })
  process.exit(0)
}

main().catch((err) => fail(err?.message ?? err))
