// The watch page's likes, shares and comments (serving_api/videos.py). Comment text is user input: it
// is only ever put into the page as text (textContent), never as markup. Writes carry the page's CSRF
// token (serving_api/auth.py); a signed-out viewer who likes is sent to the sign-in page.
(() => {
  'use strict'

  const $ = (id) => document.getElementById(id)
  const social = $('social')
  if (!social) return
  const videoId = social.dataset.video
  const signedIn = social.dataset.signedIn === 'yes'
  const base = `/videos/${encodeURIComponent(videoId)}`
  let csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || ''
  let cursor = null

  async function call(method, path, body) {
    const headers = { 'X-CSRF-Token': csrf }
    if (body !== undefined) headers['Content-Type'] = 'application/json'
    const answer = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
    csrf = answer.headers.get('X-CSRF-Token') || csrf
    const data = await answer.json().catch(() => ({}))
    if (!answer.ok) throw Object.assign(new Error(data.title || answer.statusText), { status: answer.status })
    return data
  }

  function signIn() {
    window.location.href = '/signin?next=' + encodeURIComponent(window.location.pathname + window.location.search)
  }

  // ------------------------------------------------------------ likes
  const likeButton = $('like')

  function showLike(state) {
    likeButton.setAttribute('aria-pressed', state.liked ? 'true' : 'false')
    $('likes').textContent = String(state.likes)
  }

  if (signedIn) call('GET', `${base}/like`).then(showLike).catch(() => {})
  likeButton.addEventListener('click', async () => {
    if (!signedIn) return signIn()
    const liked = likeButton.getAttribute('aria-pressed') === 'true'
    try {
      showLike(await call(liked ? 'DELETE' : 'PUT', `${base}/like`))
    } catch (err) {
      if (err.status === 401) signIn()
    }
  })

  // ------------------------------------------------------------ shares
  $('share').addEventListener('click', async () => {
    const video = document.getElementById('video')
    const body = $('share-at-time').checked && video ? { start_s: Math.floor(video.currentTime || 0) } : {}
    const answer = await call('POST', `${base}/shares`, body)
    const field = $('share-url')
    field.value = answer.url
    field.hidden = false
    field.select()
    if (navigator.clipboard) navigator.clipboard.writeText(answer.url).catch(() => {})
  })

  // ------------------------------------------------------------ comments
  const list = $('comment-list')
  const count = $('comment-count')

  function element(tag, className, text) {
    const node = document.createElement(tag)
    if (className) node.className = className
    if (text !== undefined) node.textContent = text
    return node
  }

  function renderComment(comment, replies) {
    const item = element('li', 'comment')
    item.dataset.id = comment.comment_id
    const head = element('div')
    head.append(element('span', 'author', comment.author.name || 'deleted account'),
      element('time', 'when', new Date(comment.created_at * 1000).toLocaleString()))
    item.append(head, element('p', 'text', comment.text))
    const actions = element('div', 'actions')
    if (signedIn && !comment.parent_id) {
      const reply = element('button', 'reply', 'Reply')
      reply.type = 'button'
      reply.addEventListener('click', () => replyForm(item, comment))
      actions.append(reply)
    }
    if (comment.can_delete) {
      const remove = element('button', 'delete', 'Delete')
      remove.type = 'button'
      remove.addEventListener('click', async () => {
        const answer = await call('DELETE', `${base}/comments/${encodeURIComponent(comment.comment_id)}`)
        item.remove()
        count.textContent = String(answer.comments)
      })
      actions.append(remove)
    }
    item.append(actions)
    if (!comment.parent_id) {
      const nested = replies || element('ol', 'replies')
      item.append(nested)
      loadReplies(comment, nested)
    }
    return item
  }

  async function loadReplies(comment, nested) {
    const page = await call('GET', `${base}/comments?parent_id=${encodeURIComponent(comment.comment_id)}&limit=100`)
    nested.replaceChildren(...page.items.reverse().map((reply) => renderComment(reply)))
  }

  function replyForm(item, parent) {
    if (item.querySelector('form')) return
    const form = element('form', 'comment-form')
    const text = element('textarea')
    text.maxLength = 2000
    text.rows = 1
    text.required = true
    const send = element('button', '', 'Reply')
    form.append(text, send)
    form.addEventListener('submit', async (event) => {
      event.preventDefault()
      const reply = await post({ text: text.value, parent_id: parent.comment_id })
      if (reply) {
        item.querySelector('.replies').append(renderComment(reply))
        form.remove()
      }
    })
    item.insertBefore(form, item.querySelector('.replies'))
    text.focus()
  }

  async function post(body) {
    const error = $('comment-error')
    error.hidden = true
    try {
      const comment = await call('POST', `${base}/comments`, body)
      comment.can_delete = true
      count.textContent = String(Number(count.textContent) + 1)
      return comment
    } catch (err) {
      if (err.status === 401) return signIn()
      error.textContent = err.message
      error.hidden = false
      return null
    }
  }

  async function loadComments() {
    const page = await call('GET', `${base}/comments?limit=20` + (cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''))
    page.items.forEach((comment) => list.append(renderComment(comment)))
    cursor = page.next_cursor
    $('more-comments').hidden = !cursor
  }

  $('more-comments').addEventListener('click', loadComments)
  const form = $('comment-form')
  if (form) {
    form.addEventListener('submit', async (event) => {
      event.preventDefault()
      const comment = await post({ text: $('comment-text').value })
      if (comment) {
        list.prepend(renderComment(comment))
        $('comment-text').value = ''
      }
    })
  }
  loadComments().catch(() => {})
})()
