/**
 * The models behind the hooks, driven the way the native module drives them: diffs applied in
 * order must keep JS's copy equal to the native list (a random model test, and native sequences
 * recorded from the real host against the real server), pagination flags follow the native
 * answers, and the status follows events over a racing snapshot.
 */

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';

import type { JsDiff, JsMessage, JsPagination } from '../generated/native';
import { applyDiffs, StatusModel, TimelineModel, TypingModel, type ViewHandle, type ViewPort } from '../views';
import { json, nativeEcho, nativeSent } from './builders';

/** A native view played by the test: it hands out `push` to send updates. */
function fakePort(answers: JsPagination[] = []) {
  const state = { push: (_: string) => undefined as void, closed: 0, paginated: [] as number[] };
  const handle: ViewHandle = {
    paginateBackwards: async (count) => {
      state.paginated.push(count);
      const answer = answers.shift();
      if (!answer) throw Object.assign(new Error('offline: down'), { code: 'E_OFFLINE' });
      return answer;
    },
    close: () => void (state.closed += 1),
  };
  const port: ViewPort = {
    openTimeline: async (_roomId, onDiffs) => {
      state.push = onDiffs;
      return handle;
    },
    openRoomList: async (onDiffs) => {
      state.push = onDiffs;
      return handle;
    },
  };
  return { port, state };
}

const ids = (model: TimelineModel) => model.getSnapshot().messages.map((m) => m._id);

describe('applyDiffs', () => {
  it('keeps a reversed copy equal to the native list under random diffs (model test)', () => {
    let seed = 42;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    let native: JsMessage[] = [];
    let newestFirst: string[] = [];
    let next = 1;
    for (let step = 0; step < 2000; step += 1) {
      const n = native.length;
      const item = nativeSent(next++);
      const choice = random(n === 0 ? 3 : 7);
      let diff: JsDiff<JsMessage>;
      if (choice === 0) diff = { kind: 'reset', items: [nativeSent(next++), nativeSent(next++)] };
      else if (choice === 1) diff = { kind: 'pushBack', item };
      else if (choice === 2) diff = { kind: 'pushFront', item };
      else if (choice === 3) diff = { kind: 'insert', index: random(n + 1), item };
      else if (choice === 4) diff = { kind: 'set', index: random(n), item };
      else diff = { kind: 'remove', index: random(n) };
      // The native list, by the diff's own definition (oldest first).
      if (diff.kind === 'reset') native = diff.items.slice();
      else if (diff.kind === 'pushBack') native.push(diff.item);
      else if (diff.kind === 'pushFront') native.unshift(diff.item);
      else if (diff.kind === 'insert') native.splice(diff.index, 0, diff.item);
      else if (diff.kind === 'set') native[diff.index] = diff.item;
      else native.splice(diff.index, 1);
      newestFirst = applyDiffs(newestFirst, [diff], (m: JsMessage) => m.id, true);
      assert.deepEqual(newestFirst, native.map((m) => m.id).reverse(), `step ${step}: ${diff.kind}`);
    }
  });

  it('keeps unchanged items by reference and refuses an index that does not fit', () => {
    const before = applyDiffs<JsMessage, { id: string }>([], [{ kind: 'reset', items: [nativeSent(1), nativeSent(2)] }], (m) => ({ id: m.id }));
    const after = applyDiffs(before, [{ kind: 'pushBack', item: nativeSent(3) }], (m) => ({ id: m.id }));
    assert.equal(after[0], before[0]);
    assert.throws(() => applyDiffs(before, [{ kind: 'set', index: 2, item: nativeSent(9) }], (m) => ({ id: m.id })), /does not fit/);
  });
});

describe('TimelineModel', () => {
  it('shows the reset, then an echo, then the echo sent in place (newest first)', async () => {
    const { port, state } = fakePort();
    const model = new TimelineModel(port, 'r1');
    await model.open();
    assert.equal(model.getSnapshot().isLoading, true);
    state.push(json([{ kind: 'reset', items: [nativeSent(1), nativeSent(2)] }]));
    assert.deepEqual(ids(model), ['2', '1']);
    assert.equal(model.getSnapshot().isLoading, false);
    state.push(json([{ kind: 'pushBack', item: nativeEcho('txn-1') }]));
    assert.deepEqual(ids(model), ['txn-1', '2', '1']);
    assert.equal(model.getSnapshot().messages[0].pending, true);
    state.push(json([{ kind: 'set', index: 2, item: { ...nativeEcho('txn-1'), serverId: 3, state: 'sent' } }]));
    assert.deepEqual(ids(model), ['txn-1', '2', '1'], 'same key, same place');
    assert.equal(model.getSnapshot().messages[0].sent, true);
  });

  it('pages back once at a time and takes hasMore from the native answer', async () => {
    const { port, state } = fakePort([{ added: 1, hasMore: false }]);
    const model = new TimelineModel(port, 'r1', 30);
    await model.open();
    state.push(json([{ kind: 'reset', items: [nativeSent(5)] }]));
    const first = model.loadEarlier();
    void model.loadEarlier(); // ignored: one page in flight
    assert.equal(model.getSnapshot().isLoadingEarlier, true);
    state.push(json([{ kind: 'pushFront', item: nativeSent(4) }]));
    await first;
    assert.deepEqual(state.paginated, [30]);
    assert.deepEqual(ids(model), ['5', '4']);
    assert.deepEqual([model.getSnapshot().isLoadingEarlier, model.getSnapshot().hasMore], [false, false]);
    await model.loadEarlier(); // nothing more to load
    assert.deepEqual(state.paginated, [30]);
  });

  it('keeps the messages and reports a failed page', async () => {
    const { port, state } = fakePort([]);
    const model = new TimelineModel(port, 'r1');
    await model.open();
    state.push(json([{ kind: 'reset', items: [nativeSent(5)] }]));
    await model.loadEarlier();
    const s = model.getSnapshot();
    assert.equal(s.error?.message, 'offline: down');
    assert.deepEqual([s.isLoadingEarlier, s.hasMore, s.messages.length], [false, true, 1]);
  });

  it('closes the native view with the screen and ignores updates after', async () => {
    const { port, state } = fakePort();
    const model = new TimelineModel(port, 'r1');
    await model.open();
    model.close();
    state.push(json([{ kind: 'reset', items: [nativeSent(1)] }]));
    assert.deepEqual([state.closed, ids(model).length], [1, 0]);
  });
});

/**
 * Sequences recorded from the real host (ChatHost through the generated Kotlin bindings, the
 * real core and server; android/src/test/.../HostScenario.kt): the committed one, and the one
 * of this run of scripts/test-rn.sh when CHATSYNC_RECORDED names its folder.
 */
function recordings(): { name: string; steps: string[]; final: string }[] {
  const dirs = [resolve(__dirname, '..', '..', '..', '..', 'src', '__tests__', '__fixtures__')];
  if (process.env.CHATSYNC_RECORDED) dirs.push(process.env.CHATSYNC_RECORDED);
  const out = [];
  for (const dir of dirs) {
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir).filter((n) => n.startsWith('timeline.') && n.endsWith('.json'))) {
      out.push({ name: join(dir, f), ...(JSON.parse(readFileSync(join(dir, f), 'utf8')) as { steps: string[]; final: string }) });
    }
  }
  return out;
}

describe('recorded native sequences', () => {
  const recorded = recordings();

  it('exist (the committed recording at least)', () => {
    assert.ok(recorded.length >= 1, 'no recording found');
  });

  for (const r of recorded) {
    it(`end equal to a fresh view of the same timeline: ${r.name}`, async () => {
      assert.ok(r.steps.length >= 3, `only ${r.steps.length} updates recorded`);
      const { port, state } = fakePort();
      const model = new TimelineModel(port, 'recorded');
      await model.open();
      for (const step of r.steps) {
        state.push(step);
        assert.equal(model.getSnapshot().error, null, `after ${step.slice(0, 120)}`);
      }
      const freshPort = fakePort();
      const reference = new TimelineModel(freshPort.port, 'fresh');
      await reference.open();
      freshPort.state.push(r.final);
      const shape = (m: TimelineModel) => m.getSnapshot().messages.map((x) => `${x._id}:${x.state}:${x.text}`);
      assert.deepEqual(shape(model), shape(reference));
      const kinds = new Set(r.steps.flatMap((s) => (JSON.parse(s) as JsDiff<JsMessage>[]).map((d) => d.kind)));
      for (const kind of ['reset', 'pushBack', 'set']) assert.ok(kinds.has(kind as never), `no ${kind} diff in the recording`);
    });
  }
});

describe('StatusModel', () => {
  it('takes the snapshot until the first event, then only events', () => {
    const model = new StatusModel();
    assert.equal(model.getSnapshot().isConnected, null, 'unknown is not offline');
    model.snapshot({ networkStatus: 'offline', syncState: 'idle', pending: 2, failed: 0, unread: 4 });
    assert.deepEqual([model.getSnapshot().isConnected, model.getSnapshot().pending], [false, 2]);
    model.event({ type: 'networkStatusChanged', status: 'online' });
    model.snapshot({ networkStatus: 'offline', syncState: 'idle', pending: 9, failed: 9, unread: 9 }); // older than the event
    assert.equal(model.getSnapshot().isConnected, true);
    assert.equal(model.getSnapshot().pending, 2);
    const before = model.getSnapshot();
    model.event({ type: 'messagesChanged', roomId: 'r1', ids: ['1'] });
    assert.equal(model.getSnapshot(), before, 'no new snapshot for events that change nothing');
    model.event({ type: 'syncStateChanged', state: 'backing_off' });
    model.event({ type: 'outboxChanged', pending: 0, failed: 1 });
    assert.deepEqual([model.getSnapshot().syncState, model.getSnapshot().failed], ['backing_off', 1]);
    assert.equal(model.getSnapshot().unread, 4, 'the badge from the snapshot');
    model.event({ type: 'unreadChanged', total: 0 });
    assert.equal(model.getSnapshot().unread, 0, 'the badge follows the events');
    const read = model.getSnapshot();
    model.event({ type: 'typingChanged', roomId: 'r1', userIds: ['bob'] });
    assert.equal(model.getSnapshot(), read, 'typing is not status');
  });
});

describe('TypingModel', () => {
  it('follows its own room only, and an event wins over an older snapshot', () => {
    const model = new TypingModel('r1');
    assert.deepEqual(model.getSnapshot(), []);
    model.snapshot(['carol']);
    assert.deepEqual(model.getSnapshot(), ['carol']);
    model.event({ type: 'typingChanged', roomId: 'r2', userIds: ['dave'] });
    assert.deepEqual(model.getSnapshot(), ['carol'], 'another room');
    model.event({ type: 'typingChanged', roomId: 'r1', userIds: ['bob'] });
    model.snapshot(['carol']);
    assert.deepEqual(model.getSnapshot(), ['bob'], 'the snapshot is older than the event');
    const same = model.getSnapshot();
    model.event({ type: 'typingChanged', roomId: 'r1', userIds: ['bob'] });
    assert.equal(model.getSnapshot(), same, 'no new snapshot when nothing changed');
    model.event({ type: 'typingChanged', roomId: 'r1', userIds: [] });
    assert.deepEqual(model.getSnapshot(), []);
  });
});
