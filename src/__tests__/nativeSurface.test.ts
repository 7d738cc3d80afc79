/**
 * The bridge's method table in three languages must agree, or a call fails only at run time on a
 * phone ("undefined is not a function", or an iOS selector that does not exist). This reads the
 * sources as they ship: the TypeScript interface of the native module (src/native.ts), the
 * Kotlin @ReactMethods (android/), the Objective-C exports and the Swift @objc selectors (ios/),
 * and checks names and argument counts.
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';

// Compiled to .cache/js-test/__tests__/: the repository root is three levels up.
const root = resolve(__dirname, '..', '..', '..');
const read = (path: string) => readFileSync(resolve(root, path), 'utf8');

/** Method name -> number of JS arguments. */
type Table = Map<string, number>;

function countArgs(params: string): number {
  return params.trim() === '' ? 0 : params.split(',').filter((p) => p.trim() !== '').length;
}

function fromTypeScript(): Table {
  const text = read('src/native.ts');
  const body = text.slice(text.indexOf('export interface ChatSyncNativeModule {'));
  const table: Table = new Map();
  for (const m of body.slice(0, body.indexOf('\n}')).matchAll(/^ {2}(\w+)\(([^)]*)\):/gm)) {
    table.set(m[1], countArgs(m[2]));
  }
  return table;
}

function fromKotlin(): Table {
  const text = read('android/src/main/java/dev/chatsync/reactnative/ChatSyncModule.kt');
  const table: Table = new Map();
  for (const m of text.matchAll(/@ReactMethod\s+fun (\w+)\(([^)]*)\)/g)) {
    const params = m[2].split(',').filter((p) => p.trim() !== '' && !/:\s*Promise\s*$/.test(p.trim()));
    table.set(m[1], params.length);
  }
  return table;
}

/** An exported method: its selector and how many of its arguments come from JS. */
interface Export {
  selector: string;
  args: number;
}

function fromObjectiveC(): Map<string, Export> {
  const text = read('ios/ChatSyncModule.m');
  const exports = new Map<string, Export>();
  for (const m of text.matchAll(/RCT_EXTERN_METHOD\((.*)\)\s*$/gm)) {
    // "name:(T)a label:(T)b" -> "name:label:"
    const selector = m[1].replace(/\([^)]*\)\w+/g, '').replace(/\s+/g, '');
    // The promise blocks are added by the bridge, not passed from JS.
    const types = [...m[1].matchAll(/\(([^)]*)\)/g)].map((t) => t[1].trim());
    const args = types.filter((t) => t !== 'RCTPromiseResolveBlock' && t !== 'RCTPromiseRejectBlock').length;
    exports.set(selector.split(':')[0], { selector, args });
  }
  return exports;
}

function fromSwift(): Set<string> {
  const text = read('ios/ChatSyncModule.swift');
  return new Set([...text.matchAll(/@objc\(([\w:]+)\)\s*\n\s*func /g)].map((m) => m[1]));
}

describe('the native module surface', () => {
  const ts = fromTypeScript();
  // NativeEventEmitter's own methods: RCTEventEmitter implements them on iOS.
  const emitterMethods = new Set(['addListener', 'removeListeners']);

  it('is read from src/native.ts', () => {
    assert.ok(ts.size >= 15, `found only ${[...ts.keys()].join(', ')}`);
    assert.equal(ts.get('getMessages'), 2);
  });

  it('has every JS method on Android, with the same number of arguments', () => {
    const kotlin = fromKotlin();
    for (const [name, args] of ts) {
      assert.ok(kotlin.has(name), `Android has no @ReactMethod ${name}`);
      assert.equal(kotlin.get(name), args, `${name}: argument count`);
    }
    for (const name of kotlin.keys()) assert.ok(ts.has(name), `@ReactMethod ${name} is not in src/native.ts`);
  });

  it('has every JS method exported on iOS, each selector implemented in Swift', () => {
    const objc = fromObjectiveC();
    const swift = fromSwift();
    for (const [name, args] of ts) {
      if (emitterMethods.has(name)) continue;
      const exported = objc.get(name);
      assert.ok(exported, `ios/ChatSyncModule.m does not export ${name}`);
      assert.equal(exported.args, args, `${name}: argument count of ${exported.selector}`);
      assert.ok(swift.has(exported.selector), `no Swift @objc(${exported.selector})`);
    }
    for (const name of objc.keys()) assert.ok(ts.has(name), `${name} is exported on iOS but not in src/native.ts`);
  });
});
