/**
 * What only an app build would reveal otherwise: what `npm pack` ships (the spec, the plugin,
 * the podspec, Package.swift, the builder-bob layout; no tests, fixtures or build junk), that
 * package.json's entry points exist, that the Android manifest declares what the Kotlin needs,
 * that no legacy bridge class is left, and that the Objective-C++ module implements exactly the
 * protocol codegen generated from the spec (CHATSYNC_CODEGEN, set by scripts/test-rn.sh).
 */

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';

const root = resolve(__dirname, '..', '..', '..', '..');
const read = (path: string) => readFileSync(resolve(root, path), 'utf8');
const pkg = JSON.parse(read('package.json'));

describe('npm pack', () => {
  const listing = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' }));
  const files: string[] = listing[0].files.map((f: { path: string }) => f.path);

  it('ships the spec, the plugin, the podspec, Package.swift, the native sources and the built JS', () => {
    for (const f of [
      'src/NativeChatSync.ts',
      'src/generated/native.ts',
      'app.plugin.js',
      'plugin/withChatSync.js',
      'react-native-chatsync.podspec',
      'Package.swift',
      'lib/module/index.js',
      'lib/typescript/index.d.ts',
      'android/build.gradle',
      'android/src/main/AndroidManifest.xml',
      'android/src/main/res/xml/chatsync_data_extraction_rules.xml',
      'android/src/main/java/dev/chatsync/reactnative/ChatSyncModule.kt',
      'ios/ChatSyncModule.mm',
      'ios/ChatSyncModule.h',
      'ios/ChatSyncHostAccess.swift',
    ]) {
      assert.ok(files.includes(f), `${f} is not in the package`);
    }
  });

  it('ships no tests, fixtures, test-only sources or build junk', () => {
    const junk = files.filter((f) =>
      /(^|\/)__tests__\/|__fixtures__|\.test\.|^ios\/Tests\/|^android\/src\/(test|compileCheck)\/|^(target|\.cache|node_modules|scripts|bindings|core|server|cli|tests)\/|\.tsbuildinfo$|^Cargo/.test(f),
    );
    assert.deepEqual(junk, []);
  });

  it('has its entry points (main, types, exports, the codegen sources)', () => {
    for (const path of [pkg.main, pkg.types, pkg.exports['.'].default, pkg.exports['.'].types, pkg.exports['.'].source, pkg.exports['./app.plugin.js']]) {
      assert.ok(files.includes(path.replace(/^\.\//, '')), `${path} is not in the package`);
    }
    assert.equal(pkg.codegenConfig.type, 'modules');
    assert.ok(existsSync(resolve(root, pkg.codegenConfig.jsSrcsDir, 'NativeChatSync.ts')));
    assert.equal(pkg.codegenConfig.ios.modulesProvider.ChatSync, 'ChatSyncModule');
  });
});

describe('android', () => {
  const manifest = read('android/src/main/AndroidManifest.xml');
  const kotlinDir = 'android/src/main/java/dev/chatsync/reactnative';

  it('declares the job service, bound by BIND_JOB_SERVICE, with an existing class, and the permissions the code needs', () => {
    assert.match(manifest, /<service\s+android:name="dev\.chatsync\.reactnative\.BackgroundSyncJobService"[^>]*android:permission="android\.permission\.BIND_JOB_SERVICE"/);
    assert.match(read(`${kotlinDir}/BackgroundSyncJobService.kt`), /class BackgroundSyncJobService\s*:\s*JobService\(\)/);
    const permissions = new Set([...manifest.matchAll(/<uses-permission android:name="([\w.]+)"/g)].map((m) => m[1]));
    if (read(`${kotlinDir}/BackgroundSyncScheduler.kt`).includes('setPersisted(true)')) assert.ok(permissions.has('android.permission.RECEIVE_BOOT_COMPLETED'));
    for (const p of ['INTERNET', 'ACCESS_NETWORK_STATE', 'POST_NOTIFICATIONS']) assert.ok(permissions.has(`android.permission.${p}`), p);
  });

  it('keeps its data out of backups: no_backup/ for the host, rules naming the same folders', () => {
    assert.match(read(`${kotlinDir}/ChatSyncHost.kt`), /noBackupFilesDir/);
    for (const rules of ['chatsync_backup_rules.xml', 'chatsync_data_extraction_rules.xml']) {
      const xml = read(`android/src/main/res/xml/${rules}`);
      assert.match(xml, /<exclude domain="root" path="no_backup\/chatsync\/" \/>/);
      assert.match(xml, /<exclude domain="root" path="no_backup\/chatsync-secrets\/" \/>/);
    }
    assert.doesNotMatch(read(`${kotlinDir}/EncryptedFileSecretStore.kt`) + read(`${kotlinDir}/ChatSyncHost.kt`), /SharedPreferences|security-crypto|EncryptedSharedPreferences/);
  });

  it('keeps the bindings from R8 in the consumer rules Gradle applies', () => {
    assert.match(read('android/build.gradle'), /consumerProguardFiles "proguard-rules\.pro"/);
    assert.match(read('android/proguard-rules.pro'), /-keep class dev\.chatsync\.\*\* \{ \*; \}/);
  });
});

describe('no legacy bridge', () => {
  it('is left in android/ or ios/', () => {
    const legacy = /ReactContextBaseJavaModule|RCTDeviceEventEmitter|@ReactMethod|\bReactPackage\b|RCT_EXTERN_MODULE|RCT_EXTERN_METHOD|RCT_EXPORT_METHOD|RCT_EXPORT_MODULE|RCTEventEmitter|NativeModules/;
    const sources = [
      ...readdirSync(resolve(root, 'android/src/main/java/dev/chatsync/reactnative')).map((f) => `android/src/main/java/dev/chatsync/reactnative/${f}`),
      ...readdirSync(resolve(root, 'ios')).filter((f) => /\.(swift|mm|m|h)$/.test(f)).map((f) => `ios/${f}`),
      ...readdirSync(resolve(root, 'src')).filter((f) => f.endsWith('.ts')).map((f) => `src/${f}`),
    ];
    assert.deepEqual(sources.filter((f) => legacy.test(read(f))), []);
  });
});

/** `- (void)name:(T)a label:(T)b ...;` -> `name:label:` (the selector). */
function selectors(text: string): Set<string> {
  const out = new Set<string>();
  for (const m of text.matchAll(/^- \(void\)([^;{]+)[;{]/gm)) {
    const parts = [...m[1].replace(/\s+/g, ' ').matchAll(/(\w+):\([^)]*\)\s*\w+/g)].map((p) => `${p[1]}:`);
    out.add(parts.length ? parts.join('') : m[1].trim());
  }
  return out;
}

describe('ios', { skip: process.env.CHATSYNC_CODEGEN ? false : 'CHATSYNC_CODEGEN is not set (scripts/test-rn.sh sets it)' }, () => {
  it('implements every method of the protocol codegen generated, and nothing else', () => {
    const header = readFileSync(join(process.env.CHATSYNC_CODEGEN!, 'ios/ChatSyncSpec/ChatSyncSpec.h'), 'utf8');
    const protocol = /@protocol NativeChatSyncSpec <RCTBridgeModule, RCTTurboModule>([\s\S]*?)@end/.exec(header)?.[1] ?? '';
    const wanted = selectors(protocol);
    assert.ok(wanted.size >= 16, `read only ${[...wanted]}`);
    const mm = read('ios/ChatSyncModule.mm');
    const implemented = new Set([...selectors(mm)].filter((s) => s !== 'invalidate'));
    assert.deepEqual([...implemented].sort(), [...wanted].sort());
    assert.match(read('ios/ChatSyncModule.h'), /@interface ChatSyncModule : NativeChatSyncSpecBase <NativeChatSyncSpec>/);
    assert.match(mm, /NativeChatSyncSpecJSI/);
    for (const emitter of ['emitOnClientEvent', 'emitOnViewUpdate']) assert.ok(header.includes(emitter) && mm.includes(emitter), emitter);
  });
});
