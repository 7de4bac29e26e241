// The sandbox's web view: a small mirror of Mattermost's web client over the emulator's API v4.
// It sends what the webapp sends (mattermost/mattermost webapp/platform/client/src/client4.ts):
//   a message     POST /api/v4/posts {channel_id, message, root_id, pending_post_id, user_id, ...}
//   a command     POST /api/v4/commands/execute {command, channel_id, team_id, root_id}
//   a button      POST /api/v4/posts/{post_id}/actions/{action_id} {selected_option, cookie?}
//                 (doPostActionWithCookie: the cookie only when the action has one)
//   a dialog      POST /api/v4/actions/dialogs/submit {url, callback_id, state, submission,
//                 user_id, channel_id, team_id, cancelled} (components/interactive_dialog, the
//                 channel and team being the current ones, as mattermost-redux fills them in)
// and hears the server on its websocket (authentication_challenge, then posted, post_edited,
// post_deleted, ephemeral_message, open_dialog). Everything a post carries is put in the page as
// text nodes (markdown.js builds elements itself): nothing it says can become markup.
(function () {
  'use strict';

  var md = window.CpnMarkdown;
  var S = {
    key: '',
    session: null,
    texts: {},
    language: 'fr',
    user: null, // the person acting: {id, username, first_name, last_name, token}
    team: null,
    channels: [],
    channel: null,
    users: {}, // id -> user JSON, as the API answers it
    posts: {}, // id -> post
    ephemeral: {}, // user id -> {post id -> post}: what the server sent that user only
    threadRoot: '',
    ws: null,
    wsSeq: 1,
    dialog: null,
    pendingSeq: 0,
  };

  function $(id) {
    return document.getElementById(id);
  }

  function tr(key, params) {
    var text = S.texts[key] || key;
    Object.keys(params || {}).forEach(function (name) {
      text = text.split('{' + name + '}').join(String(params[name]));
    });
    return text;
  }

  function el(tag, className, children) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    (children || []).forEach(function (child) {
      if (child !== null && child !== undefined) {
        node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
      }
    });
    return node;
  }

  function toast(message) {
    var box = $('toast');
    box.textContent = message;
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () {
      box.hidden = true;
    }, 6000);
  }

  // ------------------------------------------------------------------ API v4
  function ApiError(status, body) {
    this.status = status;
    this.body = body || {};
    this.message = (body && body.message) || 'HTTP ' + status;
  }

  function api(method, path, body) {
    var init = {
      method: method,
      headers: {
        Authorization: 'Bearer ' + S.user.token,
        'X-Requested-With': 'XMLHttpRequest',
        Accept: 'application/json',
      },
      credentials: 'omit',
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch('/api/v4' + path, init).then(function (response) {
      return response.text().then(function (raw) {
        var data = null;
        try {
          data = raw ? JSON.parse(raw) : null;
        } catch (e) {
          data = null;
        }
        if (!response.ok) throw new ApiError(response.status, data);
        return data;
      });
    });
  }

  function explain(error) {
    return tr('error', {status: error.status || '', message: error.message || String(error)});
  }

  // ------------------------------------------------------------------ people
  function displayName(userId, post) {
    var props = (post && post.props) || {};
    if (props.from_webhook === 'true' && props.override_username) return String(props.override_username);
    var user = S.users[userId];
    if (!user) return '…';
    if (S.session.teammate_name_display === 'full_name' && !user.is_bot) {
      var full = ((user.first_name || '') + ' ' + (user.last_name || '')).trim();
      if (full) return full;
    }
    return user.username;
  }

  function loadUsers(ids) {
    var missing = ids.filter(function (id, n) {
      return id && !S.users[id] && ids.indexOf(id) === n;
    });
    if (!missing.length) return Promise.resolve();
    return api('POST', '/users/ids', missing).then(function (users) {
      (users || []).forEach(function (user) {
        S.users[user.id] = user;
      });
    });
  }

  // ------------------------------------------------------------------ channels
  function channelLabel(channel) {
    if (channel.type !== 'D') return channel.display_name || channel.name;
    var other = channel.name.split('__').filter(function (id) {
      return id !== S.user.id;
    })[0] || S.user.id;
    return displayName(other);
  }

  function loadChannels() {
    return api('GET', '/users/me/teams/' + S.team.id + '/channels').then(function (channels) {
      S.channels = channels || [];
      var dmUsers = [];
      S.channels.forEach(function (c) {
        if (c.type === 'D') dmUsers = dmUsers.concat(c.name.split('__'));
      });
      return loadUsers(dmUsers).then(renderSidebar);
    });
  }

  function renderSidebar() {
    var lists = {channels: $('channel-list'), dms: $('dm-list')};
    lists.channels.textContent = '';
    lists.dms.textContent = '';
    S.channels
      .slice()
      .sort(function (a, b) {
        return channelLabel(a).localeCompare(channelLabel(b));
      })
      .forEach(function (channel) {
        var icon = channel.type === 'P' ? '🔒' : channel.type === 'D' ? '@' : '#';
        var button = el('button', 'sidebar__channel', [
          el('span', 'sidebar__icon', [icon]),
          el('span', 'sidebar__label', [channelLabel(channel)]),
        ]);
        button.type = 'button';
        button.dataset.channelId = channel.id;
        button.dataset.channelName = channel.name;
        var current = S.channel && S.channel.id === channel.id;
        if (current) button.setAttribute('aria-current', 'page');
        button.addEventListener('click', function () {
          selectChannel(channel.id);
        });
        var item = el('li', current ? 'active' : '', [button]);
        (channel.type === 'D' ? lists.dms : lists.channels).appendChild(item);
      });
    $('dms-heading').hidden = !lists.dms.childNodes.length;
  }

  function selectChannel(channelId) {
    var channel = S.channels.filter(function (c) {
      return c.id === channelId;
    })[0];
    if (!channel) return Promise.resolve();
    S.channel = channel;
    closeThread();
    $('channel-name').textContent = (channel.type === 'D' ? '@' : '') + channelLabel(channel);
    $('channel-purpose').textContent = channel.purpose || channel.header || '';
    $('composer-label').textContent = tr('write_to', {channel: channelLabel(channel)});
    $('composer-input').placeholder = tr('write_to', {channel: channelLabel(channel)});
    renderSidebar();
    rememberPlace();
    return api('GET', '/channels/' + channel.id + '/posts?page=0&per_page=60').then(function (list) {
      return addPostList(list).then(renderChannel);
    });
  }

  function addPostList(list) {
    var posts = (list && list.posts) || {};
    Object.keys(posts).forEach(function (id) {
      S.posts[id] = posts[id];
    });
    return loadUsers(
      Object.keys(posts).map(function (id) {
        return posts[id].user_id;
      })
    );
  }

  // ------------------------------------------------------------------ posts
  function isEphemeral(post) {
    return post.type === 'system_ephemeral' || post._ephemeral === true;
  }

  function postsOf(channelId, rootId) {
    var mine = S.ephemeral[S.user.id] || {};
    var all = Object.keys(S.posts)
      .map(function (id) {
        return S.posts[id];
      })
      .concat(
        Object.keys(mine).map(function (id) {
          return mine[id];
        })
      );
    return all
      .filter(function (post) {
        if (post.channel_id !== channelId || post.delete_at) return false;
        // Collapsed reply threads (the webapp's default): replies live in the thread only. A reply
        // to an ephemeral post (a button's ephemeral_text) has no thread to live in: it is shown
        // under the post it answers.
        if (rootId) return post.id === rootId || post.root_id === rootId;
        return !post.root_id || (isEphemeral(post) && Boolean(mine[post.root_id]));
      })
      .sort(function (a, b) {
        return a.create_at - b.create_at;
      });
  }

  function replyCount(post) {
    var known = Object.keys(S.posts).filter(function (id) {
      return S.posts[id].root_id === post.id && !S.posts[id].delete_at;
    }).length;
    return Math.max(known, post.reply_count || 0);
  }

  function clock(stamp) {
    var date = new Date(stamp || Date.now());
    return date.toLocaleTimeString(S.language === 'en' ? 'en-GB' : 'fr-FR', {hour: '2-digit', minute: '2-digit'});
  }

  function renderPost(post, inThread) {
    var props = post.props || {};
    var author = el('span', 'post__author', [displayName(post.user_id, post)]);
    var header = el('div', 'post__header', [author]);
    var sender = S.users[post.user_id];
    if (props.from_webhook === 'true' || (sender && sender.is_bot)) header.appendChild(el('span', 'post__bot-tag', [tr('bot_tag')]));
    var time = el('time', 'post__time', [clock(post.create_at)]);
    time.dateTime = new Date(post.create_at || Date.now()).toISOString();
    header.appendChild(time);
    if (isEphemeral(post)) {
      // components/post_view/post_info: the "post__visibility" note of an ephemeral post.
      header.appendChild(el('span', 'post__visibility', [tr('only_you')]));
    }
    var body = el('div', 'post__body', []);
    var edited = post.edit_at ? el('span', 'post__edited', [tr('edited')]) : null;
    if (post.message) {
      var message = md.render(post.message);
      // The webapp's "Edited" indicator follows the message's last words.
      var last = message.lastChild;
      if (edited && last && last.tagName === 'P') last.appendChild(edited);
      else if (edited) message.appendChild(edited);
      body.appendChild(message);
    } else if (edited) {
      header.appendChild(edited);
    }
    var attachments = props.attachments;
    if (Array.isArray(attachments) && attachments.length) {
      body.appendChild(
        el(
          'div',
          'attachment-list',
          attachments.map(function (attachment) {
            return renderAttachment(post, attachment || {});
          })
        )
      );
    }
    var article = el('article', 'post' + (isEphemeral(post) ? ' post--ephemeral' : '') + (post.root_id ? ' post--reply' : ''), [
      el('div', 'post__avatar', [displayName(post.user_id, post).slice(0, 1).toUpperCase()]),
      el('div', 'post__content', [header, body]),
    ]);
    article.id = (inThread ? 'rhs-post-' : 'post-') + post.id;
    article.dataset.postId = post.id;
    article.setAttribute('aria-label', displayName(post.user_id, post) + ', ' + clock(post.create_at));
    if (!inThread && !isEphemeral(post)) {
      var count = replyCount(post);
      var open = el('button', 'post__reply', [count ? tr(count === 1 ? 'replies_one' : 'replies_other', {count: count}) : tr('reply')]);
      open.type = 'button';
      open.addEventListener('click', function () {
        openThread(post.id);
      });
      article.querySelector('.post__content').appendChild(open);
    }
    return article;
  }

  // components/post_view/message_attachments/message_attachment.tsx: pretext above the box; in it,
  // author, title, text, fields (short ones two by two, a long one on its own row), footer, actions;
  // the left border in the attachment's colour (a "#…" colour, else a named class).
  function renderAttachment(post, a) {
    var parts = [];
    if (a.author_name) parts.push(el('div', 'attachment__author', [String(a.author_name)]));
    if (a.title) {
      var title = el('h3', 'attachment__title', []);
      if (a.title_link && md.safeUrl(a.title_link)) {
        var link = el('a', 'attachment__title-link', [String(a.title)]);
        link.href = md.safeUrl(a.title_link);
        link.rel = 'noopener noreferrer';
        link.target = '_blank';
        title.appendChild(link);
      } else {
        md.inline(String(a.title), title);
      }
      parts.push(title);
    }
    if (a.text) parts.push(el('div', 'attachment__text', [md.render(String(a.text))]));
    var fields = fieldTables(a.fields);
    if (fields) parts.push(fields);
    if (a.footer) parts.push(el('div', 'attachment__footer', [String(a.footer).slice(0, 300)]));
    var actions = renderActions(post, a.actions);
    if (actions) parts.push(actions);
    var box = el('div', 'attachment__container', parts);
    var color = typeof a.color === 'string' ? a.color : '';
    if (/^#[0-9a-fA-F]{3,8}$/.test(color)) box.style.borderLeftColor = color;
    else if (/^(good|warning|danger)$/.test(color)) box.classList.add('attachment__container--' + color);
    var wrap = el('div', 'attachment' + (a.pretext ? ' attachment--pretext' : ''), []);
    if (a.pretext) wrap.appendChild(el('div', 'attachment__pretext', [md.render(String(a.pretext))]));
    if (parts.length) wrap.appendChild(box);
    return wrap;
  }

  function fieldTables(fields) {
    if (!Array.isArray(fields) || !fields.length) return null;
    var tables = el('div', 'attachment__fields', []);
    var heads = [];
    var cells = [];
    var lastWasLong = false;
    function flush() {
      if (!heads.length) return;
      var table = el('table', 'attachment-fields', [el('thead', '', [el('tr', '', heads)]), el('tbody', '', [el('tr', '', cells)])]);
      tables.appendChild(table);
      heads = [];
      cells = [];
      lastWasLong = false;
    }
    fields.forEach(function (field) {
      field = field || {};
      if (heads.length === 2 || field.short !== true || lastWasLong) flush();
      var th = el('th', 'attachment-field__caption', [String(field.title || '')]);
      th.scope = 'col';
      heads.push(th);
      cells.push(el('td', 'attachment-field', [md.render(String(field.value === undefined || field.value === null ? '' : field.value))]));
      lastWasLong = field.short !== true;
    });
    flush();
    return tables;
  }

  var BUTTON_STYLES = /^(default|primary|success|good|warning|danger)$/;

  function renderActions(post, actions) {
    if (!Array.isArray(actions) || !actions.length) return null;
    var box = el('div', 'attachment-actions', []);
    actions.forEach(function (action) {
      if (!action || !action.id || !action.name) return;
      if (action.type === 'select') {
        box.appendChild(renderMenu(post, action));
        return;
      }
      var style = String(action.style || 'default');
      var button = el('button', 'btn btn-sm action-button', [String(action.name)]);
      button.type = 'button';
      if (BUTTON_STYLES.test(style)) button.classList.add('action-button--' + style);
      else if (/^#[0-9a-fA-F]{3,8}$/.test(style)) button.style.color = style;
      button.disabled = Boolean(action.disabled);
      button.dataset.actionId = action.id;
      button.addEventListener('click', function () {
        press(post, action, '', button);
      });
      box.appendChild(button);
    });
    return box;
  }

  function renderMenu(post, action) {
    var id = 'menu-' + post.id + '-' + action.id;
    var select = el('select', 'action-menu', [el('option', '', [String(action.name)])]);
    select.id = id;
    select.firstChild.value = '';
    var options = Array.isArray(action.options) ? action.options : [];
    if (action.data_source === 'users') {
      options = Object.keys(S.users).map(function (uid) {
        return {text: displayName(uid), value: uid};
      });
    } else if (action.data_source === 'channels') {
      options = S.channels.map(function (c) {
        return {text: channelLabel(c), value: c.id};
      });
    }
    options.forEach(function (option) {
      var node = el('option', '', [String((option && option.text) || '')]);
      node.value = String((option && option.value) || '');
      select.appendChild(node);
    });
    select.disabled = Boolean(action.disabled);
    select.setAttribute('aria-label', String(action.name));
    select.addEventListener('change', function () {
      if (select.value) press(post, action, select.value, select);
    });
    return select;
  }

  function press(post, action, selected, control) {
    var body = {selected_option: selected};
    if (action.cookie) body.cookie = action.cookie;
    control.disabled = true;
    return api('POST', '/posts/' + post.id + '/actions/' + encodeURIComponent(action.id), body)
      .catch(function (error) {
        toast(explain(error));
      })
      .then(function () {
        control.disabled = false;
      });
  }

  // What a post's rendering depends on: an unchanged post keeps its element (and the focus a
  // keyboard user put on one of its buttons) when the list is drawn again.
  function version(post) {
    return [post.update_at, post.edit_at, post.delete_at, replyCount(post), displayName(post.user_id, post), (post.message || '').length].join('|');
  }

  function renderList(container, posts, inThread) {
    var atBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 40;
    var existing = {};
    Array.prototype.forEach.call(container.children, function (node) {
      if (node.dataset.postId) existing[node.dataset.postId] = node;
    });
    var wanted = posts.map(function (post) {
      var node = existing[post.id];
      var seen = version(post);
      if (node && node.dataset.version === seen) return node;
      var fresh = renderPost(post, inThread);
      fresh.dataset.version = seen;
      return fresh;
    });
    if (!wanted.length) {
      var empty = container.querySelector('.post-list__empty') || el('p', 'post-list__empty', [tr('no_posts')]);
      wanted.push(empty);
    }
    Array.prototype.slice.call(container.children).forEach(function (node) {
      if (wanted.indexOf(node) === -1) container.removeChild(node);
    });
    wanted.forEach(function (node, n) {
      if (container.children[n] !== node) container.insertBefore(node, container.children[n] || null);
    });
    if (atBottom || !renderList.seen[container.id]) container.scrollTop = container.scrollHeight;
    renderList.seen[container.id] = true;
  }
  renderList.seen = {};

  function renderChannel() {
    if (!S.channel) return;
    renderList($('post-list'), postsOf(S.channel.id, ''), false);
    if (S.threadRoot) renderThread();
  }

  // ------------------------------------------------------------------ threads (the right-hand side)
  function openThread(rootId) {
    S.threadRoot = rootId;
    $('rhs').hidden = false;
    document.body.classList.add('rhs-open');
    $('rhs-channel').textContent = S.channel ? channelLabel(S.channel) : '';
    renderThread();
    api('GET', '/posts/' + rootId + '/thread')
      .then(addPostList)
      .then(renderThread)
      .catch(function (error) {
        toast(explain(error));
      });
    $('thread-input').focus();
  }

  function closeThread() {
    S.threadRoot = '';
    $('rhs').hidden = true;
    document.body.classList.remove('rhs-open');
  }

  function renderThread() {
    if (!S.threadRoot || !S.channel) return;
    renderList($('thread-list'), postsOf(S.channel.id, S.threadRoot), true);
  }

  // ------------------------------------------------------------------ writing
  function send(text, rootId) {
    var message = text.replace(/\s+$/, '');
    if (!message.trim() || !S.channel) return Promise.resolve();
    if (message[0] === '/') {
      return api('POST', '/commands/execute', {
        command: message,
        channel_id: S.channel.id,
        team_id: S.team.id,
        root_id: rootId,
      }).then(
        function (response) {
          if (response && response.goto_location) toast(response.goto_location);
        },
        function (error) {
          // The webapp shows a failed command as a system message to its author only.
          localEphemeral(error.message, rootId);
        }
      );
    }
    S.pendingSeq += 1;
    return api('POST', '/posts', {
      channel_id: S.channel.id,
      message: message,
      root_id: rootId,
      pending_post_id: S.user.id + ':' + Date.now() + S.pendingSeq,
      user_id: S.user.id,
      create_at: 0,
      file_ids: [],
      metadata: {},
      props: {},
    }).then(
      function (post) {
        S.posts[post.id] = post;
        renderChannel();
      },
      function (error) {
        toast(explain(error));
      }
    );
  }

  function localEphemeral(message, rootId) {
    var post = {
      id: 'local' + Date.now(),
      channel_id: S.channel.id,
      root_id: rootId,
      user_id: S.user.id,
      message: message,
      type: 'system_ephemeral',
      create_at: Date.now(),
      props: {},
    };
    storeEphemeral(post);
  }

  function storeEphemeral(post) {
    var mine = (S.ephemeral[S.user.id] = S.ephemeral[S.user.id] || {});
    post._ephemeral = true;
    mine[post.id] = post;
    renderChannel();
  }

  function wireComposer(formId, inputId, rootOf) {
    var form = $(formId);
    var input = $(inputId);
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var text = input.value;
      input.value = '';
      send(text, rootOf());
    });
    // Enter sends, Shift+Enter starts a new line (the webapp's default).
    input.addEventListener('keydown', function (event) {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
  }

  // ------------------------------------------------------------------ dialogs
  function openDialog(opened) {
    var dialog = opened.dialog || {};
    S.dialog = {url: opened.url, dialog: dialog, channel: S.channel};
    var box = $('interactive-dialog');
    $('dialog-title').textContent = String(dialog.title || '');
    $('dialog-submit').textContent = String(dialog.submit_label || tr('submit'));
    var body = $('dialog-body');
    body.textContent = '';
    $('dialog-error').hidden = true;
    if (dialog.introduction_text) body.appendChild(el('div', 'modal__intro', [md.render(String(dialog.introduction_text))]));
    (dialog.elements || []).forEach(function (element, n) {
      body.appendChild(renderElement(element || {}, n));
    });
    if (!box.open) box.showModal();
    var first = body.querySelector('input, textarea, select');
    if (first) first.focus();
  }

  function renderElement(element, n) {
    var id = 'dialog-field-' + n;
    var wrap = el('div', 'form-group', []);
    wrap.dataset.name = String(element.name || '');
    var label = el('label', 'form-group__label', [String(element.display_name || element.name || '')]);
    label.htmlFor = id;
    if (element.optional) label.appendChild(el('span', 'form-group__optional', [' ' + tr('optional')]));
    var control;
    var kind = element.type;
    if (kind === 'textarea') {
      control = el('textarea', 'form-control', []);
      control.rows = 4;
      control.value = element.default ? String(element.default) : '';
    } else if (kind === 'radio') {
      // A group of radio buttons, named by its legend (the element's display name).
      control = el('fieldset', 'form-radio', [el('legend', 'form-group__label', [label.textContent])]);
      (Array.isArray(element.options) ? element.options : []).forEach(function (option, k) {
        var radio = el('input', '', []);
        radio.type = 'radio';
        radio.name = 'dialog-radio-' + n;
        radio.id = id + '-' + k;
        radio.value = String((option && option.value) || '');
        radio.checked = element.default !== undefined && String(element.default) === radio.value;
        var line = el('label', 'form-check__label', [radio, ' ' + String((option && option.text) || '')]);
        line.htmlFor = radio.id;
        control.appendChild(line);
      });
    } else if (kind === 'select') {
      control = el('select', 'form-control', []);
      var options = Array.isArray(element.options) ? element.options : [];
      if (element.data_source === 'users') {
        options = Object.keys(S.users).map(function (uid) {
          return {text: displayName(uid), value: uid};
        });
      } else if (element.data_source === 'channels') {
        options = S.channels.map(function (c) {
          return {text: channelLabel(c), value: c.id};
        });
      }
      var blank = el('option', '', [element.placeholder ? String(element.placeholder) : '—']);
      blank.value = '';
      control.appendChild(blank);
      options.forEach(function (option) {
        var node = el('option', '', [String((option && option.text) || '')]);
        node.value = String((option && option.value) || '');
        control.appendChild(node);
      });
      control.value = element.default ? String(element.default) : '';
    } else if (kind === 'bool') {
      control = el('input', 'form-check', []);
      control.type = 'checkbox';
      control.checked = element.default === true || element.default === 'true';
    } else {
      control = el('input', 'form-control', []);
      var subtype = String(element.subtype || 'text');
      control.type = /^(email|number|tel|url|password)$/.test(subtype) ? subtype : 'text';
      if (subtype === 'password') control.autocomplete = 'new-password';
      control.value = element.default ? String(element.default) : '';
      if (element.max_length) control.maxLength = Number(element.max_length);
    }
    control.id = id;
    if (kind !== 'radio') control.name = String(element.name || '');
    if (element.placeholder && kind !== 'bool' && control.tagName !== 'SELECT') control.placeholder = String(element.placeholder);
    if (!element.optional && kind !== 'bool' && kind !== 'radio') control.required = true;
    var help = null;
    if (element.help_text) {
      help = el('p', 'form-group__help', [String(element.help_text)]);
      help.id = id + '-help';
      control.setAttribute('aria-describedby', help.id);
    }
    var error = el('p', 'form-group__error', []);
    error.id = id + '-error';
    error.hidden = true;
    // A field's error goes away once it is changed; the next submission checks it again.
    ['input', 'change'].forEach(function (type) {
      control.addEventListener(type, function () {
        error.hidden = true;
        control.removeAttribute('aria-invalid');
      });
    });
    if (kind === 'bool') {
      // The display name labels the box; its placeholder is the sentence beside it.
      wrap.appendChild(label);
      wrap.appendChild(el('div', 'form-check__label', [control, el('span', '', [' ' + String(element.placeholder || '')])]));
    } else if (kind === 'radio') {
      wrap.appendChild(control);
    } else {
      wrap.appendChild(label);
      wrap.appendChild(control);
    }
    if (help) wrap.appendChild(help);
    wrap.appendChild(error);
    return wrap;
  }

  // The values as the webapp submits them: strings, booleans for bool elements, numbers for the
  // number subtype; an empty optional value is left out.
  function submission() {
    var values = {};
    var problems = {};
    (S.dialog.dialog.elements || []).forEach(function (element, n) {
      var control = $('dialog-field-' + n);
      if (!control) return;
      var value;
      if (element.type === 'bool') value = control.checked;
      else if (element.type === 'radio') {
        var picked = control.querySelector('input:checked');
        value = picked ? picked.value : '';
      } else value = control.value;
      if (element.type !== 'bool' && value === '') {
        if (!element.optional) problems[element.name] = tr('required');
        return;
      }
      // The webapp's conversion: a number subtype sends a number when the text is one.
      if (element.subtype === 'number' && (element.type === 'text' || element.type === 'textarea')) {
        value = isNaN(Number(value)) ? String(value) : Number(value);
      }
      if (element.min_length && String(value).length < element.min_length) problems[element.name] = tr('too_short', {min: element.min_length});
      values[element.name] = value;
    });
    return {values: values, problems: problems};
  }

  function showErrors(errors, general) {
    Array.prototype.forEach.call($('dialog-body').querySelectorAll('.form-group'), function (group) {
      var box = group.querySelector('.form-group__error');
      var message = errors[group.dataset.name];
      box.textContent = message ? String(message) : '';
      box.hidden = !message;
      var control = group.querySelector('input, textarea, select, fieldset');
      if (message) {
        control.setAttribute('aria-invalid', 'true');
        control.setAttribute('aria-errormessage', box.id);
      } else {
        control.removeAttribute('aria-invalid');
      }
    });
    var top = $('dialog-error');
    top.textContent = general ? String(general) : '';
    top.hidden = !general;
  }

  function submitDialog(cancelled) {
    var open = S.dialog;
    if (!open) return Promise.resolve();
    var values = {};
    if (!cancelled) {
      var checked = submission();
      if (Object.keys(checked.problems).length) {
        showErrors(checked.problems, '');
        return Promise.resolve();
      }
      values = checked.values;
    }
    var channel = open.channel || S.channel;
    var body = {
      url: open.url,
      callback_id: String(open.dialog.callback_id || ''),
      state: String(open.dialog.state || ''),
      submission: values,
      user_id: S.user.id,
      channel_id: channel.id,
      team_id: S.team.id,
      cancelled: Boolean(cancelled),
    };
    if (cancelled && !open.dialog.notify_on_cancel) {
      closeDialog();
      return Promise.resolve();
    }
    $('dialog-submit').disabled = true;
    return api('POST', '/actions/dialogs/submit', body)
      .then(
        function (answer) {
          answer = answer || {};
          if (!cancelled && (answer.error || (answer.errors && Object.keys(answer.errors).length))) {
            showErrors(answer.errors || {}, answer.error || '');
            return;
          }
          closeDialog();
        },
        function (error) {
          if (cancelled) closeDialog();
          else showErrors({}, explain(error));
        }
      )
      .then(function () {
        $('dialog-submit').disabled = false;
      });
  }

  // The form is emptied and taken out of the page: nothing typed in it (a password) stays in the DOM.
  function closeDialog() {
    S.dialog = null;
    var box = $('interactive-dialog');
    if (box.open) box.close();
    $('dialog-body').textContent = '';
    // The dialog gives the focus back to the message box, but Chromium leaves its caret out of
    // it (keys reach it and type nothing): focusing it again puts the caret back.
    setTimeout(function () {
      var input = $('composer-input');
      input.blur();
      input.focus();
    }, 0);
  }

  // ------------------------------------------------------------------ the websocket
  function connect() {
    if (S.ws) {
      S.ws.onclose = null;
      S.ws.close();
    }
    var user = S.user;
    var ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/api/v4/websocket');
    S.ws = ws;
    ws.onopen = function () {
      S.wsSeq = 1;
      ws.send(JSON.stringify({seq: S.wsSeq++, action: 'authentication_challenge', data: {token: user.token}}));
    };
    ws.onmessage = function (message) {
      var event;
      try {
        event = JSON.parse(message.data);
      } catch (e) {
        return;
      }
      if (event.event === 'hello') setConnected(true);
      if (event.event) onEvent(user, event);
    };
    ws.onclose = function () {
      if (S.ws !== ws) return;
      setConnected(false);
      setTimeout(function () {
        if (S.ws === ws && S.user === user) connect();
      }, 1000);
    };
  }

  function setConnected(on) {
    document.body.dataset.connected = on ? 'true' : 'false';
    $('connection').textContent = on ? '' : tr('disconnected');
  }

  function decodePost(event) {
    try {
      return JSON.parse(event.data.post);
    } catch (e) {
      return null;
    }
  }

  function onEvent(user, event) {
    if (user !== S.user) return;
    var post;
    switch (event.event) {
      case 'posted':
      case 'post_edited':
        post = decodePost(event);
        if (!post) return;
        if (isEphemeral(post) && event.broadcast && event.broadcast.user_id) {
          storeEphemeral(post);
          return;
        }
        S.posts[post.id] = post;
        if (!S.channels.some(function (c) { return c.id === post.channel_id; })) loadChannels();
        loadUsers([post.user_id]).then(renderChannel);
        return;
      case 'post_deleted':
        post = decodePost(event);
        if (post && S.posts[post.id]) S.posts[post.id].delete_at = post.delete_at || Date.now();
        renderChannel();
        return;
      case 'ephemeral_message':
        post = decodePost(event);
        if (post) loadUsers([post.user_id]).then(function () { storeEphemeral(post); });
        return;
      case 'open_dialog':
        try {
          openDialog(JSON.parse(event.data.dialog));
        } catch (e) {
          toast(String(e));
        }
        return;
      default:
        return;
    }
  }

  // ------------------------------------------------------------------ who is acting, and where
  function hashParams() {
    var params = {};
    location.hash.replace(/^#/, '').split('&').forEach(function (pair) {
      var at = pair.indexOf('=');
      if (at > 0) params[decodeURIComponent(pair.slice(0, at))] = decodeURIComponent(pair.slice(at + 1));
    });
    return params;
  }

  function rememberPlace() {
    var params = ['key=' + encodeURIComponent(S.key), 'as=' + encodeURIComponent(S.user.username)];
    if (S.channel) params.push('channel=' + encodeURIComponent(S.channel.name));
    history.replaceState(null, '', '#' + params.join('&'));
  }

  function selectUser(username, channelName) {
    var person = S.session.users.filter(function (u) {
      return u.username === username;
    })[0] || S.session.users[0];
    S.user = person;
    $('user-picker').value = person.username;
    closeThread();
    if (S.dialog) closeDialog();
    connect();
    var wanted = channelName || (S.channel && S.channel.name) || '';
    return api('GET', '/users/me')
      .then(function (me) {
        S.users[me.id] = me;
        return loadChannels();
      })
      .then(function () {
        var channel = S.channels.filter(function (c) {
          return c.name === wanted;
        })[0] || S.channels.filter(function (c) {
          return c.type !== 'D';
        })[0];
        return channel ? selectChannel(channel.id) : null;
      })
      .catch(function (error) {
        toast(explain(error));
      });
  }

  function fillTexts() {
    Array.prototype.forEach.call(document.querySelectorAll('[data-text]'), function (node) {
      node.textContent = tr(node.dataset.text);
    });
    Array.prototype.forEach.call(document.querySelectorAll('[data-label]'), function (node) {
      node.setAttribute('aria-label', tr(node.dataset.label));
    });
    document.documentElement.lang = S.language || 'fr';
  }

  function keyboard() {
    // The skip link moves the focus without following its href: the address keeps the key and the place.
    document.querySelector('.skip-link').addEventListener('click', function (event) {
      event.preventDefault();
      $('composer-input').focus();
    });
    document.addEventListener('keydown', function (event) {
      if (event.key === 'Escape' && S.threadRoot && !S.dialog) {
        closeThread();
        $('composer-input').focus();
      }
      // Alt+↑ / Alt+↓: the previous or next channel, as in the webapp.
      if (event.altKey && (event.key === 'ArrowUp' || event.key === 'ArrowDown') && S.channel) {
        event.preventDefault();
        var buttons = Array.prototype.slice.call(document.querySelectorAll('.sidebar__channel'));
        var at = buttons.map(function (b) { return b.dataset.channelId; }).indexOf(S.channel.id);
        var next = buttons[(at + (event.key === 'ArrowUp' ? -1 : 1) + buttons.length) % buttons.length];
        if (next) selectChannel(next.dataset.channelId).then(function () { next.focus(); });
      }
    });
  }

  function getJson(path, headers) {
    return fetch(path, {headers: headers || {}, credentials: 'omit'}).then(function (response) {
      if (!response.ok) throw new ApiError(response.status, null);
      return response.json();
    });
  }

  function boot() {
    var params = hashParams();
    S.key = params.key || '';
    getJson('/web/texts')
      .then(function (texts) {
        S.texts = texts.texts || {};
        S.language = texts.language || 'fr';
        fillTexts();
        return getJson('/web/session', {'X-Web-Key': S.key}).catch(function (error) {
          document.body.textContent = tr('refused');
          throw error;
        });
      })
      .then(function (session) {
        S.session = session;
        S.team = session.team;
        $('team-name').textContent = S.team ? S.team.display_name : '';
        var picker = $('user-picker');
        session.users.forEach(function (u) {
          var option = el('option', '', [((u.first_name + ' ' + u.last_name).trim() || u.username) + ' (@' + u.username + ')']);
          option.value = u.username;
          picker.appendChild(option);
        });
        picker.addEventListener('change', function () {
          selectUser(picker.value, S.channel ? S.channel.name : '');
        });
        wireComposer('composer', 'composer-input', function () {
          return '';
        });
        wireComposer('thread-composer', 'thread-input', function () {
          return S.threadRoot;
        });
        $('rhs-close').addEventListener('click', closeThread);
        $('dialog-form').addEventListener('submit', function (event) {
          event.preventDefault();
          submitDialog(false);
        });
        $('dialog-cancel').addEventListener('click', function () {
          submitDialog(true);
        });
        $('interactive-dialog').addEventListener('cancel', function (event) {
          event.preventDefault();
          submitDialog(true);
        });
        keyboard();
        return selectUser(params.as || '', params.channel || '');
      })
      .then(function () {
        document.body.dataset.ready = 'true';
      })
      .catch(function () {
        document.body.dataset.ready = 'refused';
      });
  }

  window.CpnWeb = {state: S};
  boot();
})();
