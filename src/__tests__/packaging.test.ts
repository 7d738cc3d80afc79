/**
 * What only a device build would reveal otherwise: the Android manifest declares what the Kotlin
 * code needs (a persisted job needs RECEIVE_BOOT_COMPLETED, JobScheduler needs the service bound
 * by BIND_JOB_SERVICE), and the iOS task identifier the app must list in Info.plist is the one
 * the code registers and the docs tell app developers to add.
 */

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';

const root = resolve(__dirname, '..', '..', '..');
const read = (path: string) => readFileSync(resolve(root, path), 'utf8');
const kotlinDir = 'android/src/main/java/dev/chatsync/reactnative';

describe('android packaging', () => {
  const manifest = read('android/src/main/AndroidManifest.xml');

  it('declares the job service, bound by BIND_JOB_SERVICE, with an existing class', () => {
    const service = /<service\s+android:name="([\w.]+)"[^>]*android:permission="android\.permission\.BIND_JOB_SERVICE"/.exec(manifest);
    assert.ok(service, 'no job service with BIND_JOB_SERVICE in the manifest');
    const simpleName = service[1].split('.').pop();
    assert.equal(service[1], `dev.chatsync.reactnative.${simpleName}`);
    assert.match(read(`${kotlinDir}/${simpleName}.kt`), new RegExp(`class ${simpleName}\\s*:\\s*JobService\\(\\)`));
    assert.match(read(`${kotlinDir}/BackgroundSyncScheduler.kt`), new RegExp(`${simpleName}::class\\.java`));
  });

  it('asks for every permission the code relies on', () => {
    const permissions = new Set([...manifest.matchAll(/<uses-permission android:name="([\w.]+)"/g)].map((m) => m[1]));
    const scheduler = read(`${kotlinDir}/BackgroundSyncScheduler.kt`);
    if (scheduler.includes('setPersisted(true)')) {
      assert.ok(permissions.has('android.permission.RECEIVE_BOOT_COMPLETED'), 'setPersisted(true) throws without RECEIVE_BOOT_COMPLETED');
    }
    if (read(`${kotlinDir}/NetworkMonitor.kt`).includes('registerNetworkCallback')) {
      assert.ok(permissions.has('android.permission.ACCESS_NETWORK_STATE'), 'NetworkCallback needs ACCESS_NETWORK_STATE');
    }
    assert.ok(permissions.has('android.permission.INTERNET'));
    assert.ok(read(`${kotlinDir}/NewMessageNotifier.kt`).includes('android.permission.POST_NOTIFICATIONS'));
    assert.ok(permissions.has('android.permission.POST_NOTIFICATIONS'), 'Android 13 notifications');
  });

  it('keeps the bindings from R8 in the consumer rules Gradle applies', () => {
    assert.match(read('android/build.gradle'), /consumerProguardFiles "proguard-rules\.pro"/);
    const rules = read('android/proguard-rules.pro');
    assert.match(rules, /-keep class com\.sun\.jna\.\*\* \{ \*; \}/);
    assert.match(rules, /-keep class dev\.chatsync\.\*\* \{ \*; \}/);
  });
});

describe('ios packaging', () => {
  it('uses one task identifier in the code and in the setup the docs give', () => {
    const id = /static let identifier = "([\w.]+)"/.exec(read('ios/ChatSyncBackgroundTasks.swift'));
    assert.ok(id, 'no identifier in ChatSyncBackgroundTasks.swift');
    const docs = read('docs/react-native.md');
    assert.ok(docs.includes(`<string>${id[1]}</string>`), 'docs/react-native.md must list it under BGTaskSchedulerPermittedIdentifiers');
    assert.ok(docs.includes('[ChatSyncBackgroundTasks registerTasks]'), 'the docs must show the registration call');
    assert.match(read('ios/ChatSyncBackgroundTasks.swift'), /@objc public static func registerTasks\(\)/);
  });

  it('builds every module source through the podspec, and not the Linux tests', () => {
    const podspec = read('react-native-chatsync.podspec');
    assert.match(podspec, /s\.source_files\s*=\s*"ios\/\*\.\{swift,m\}"/);
    assert.match(podspec, /s\.exclude_files\s*=\s*"ios\/Tests\/\*\*\/\*"/);
    assert.match(podspec, /:ios => "13\.0"/, 'BGTaskScheduler and NWPathMonitor need iOS 13');
    assert.ok(existsSync(resolve(root, 'ios/ChatSyncModule.m')));
  });
});
