#!/usr/bin/env python3
"""Compile-only class stubs of React Native's public Android API, from its API dump.

React Native has published its Android artifacts to Maven Central since 0.71, so the npm
package no longer carries compiled classes (0.70.15 is the last that does). It does carry
ReactAndroid/api/ReactAndroid.api: the binary-compatibility dump (kotlinx
binary-compatibility-validator) of every public and protected class, field and method, with JVM
descriptors. This script turns that dump into class files with the same names, supertypes,
access flags and descriptors, and no code, so kotlinc and javac can check a module against the
API of the React Native version the dump comes from. Generic signatures are not in the dump, so
they are not in the stubs: those types read as raw types.

Every element of an annotation gets a default (its type's zero value): the dump does not say
which have one, and React Native's (`@ReactMethod(isBlockingSynchronousMethod)`) do.

A method whose last parameter is Object[] is marked varargs (the dump does not say; React
Native's `Callback.invoke(Object...)` is one, and generated specs call it so).

Supertypes the dump names but does not declare (android.*, java.*, fbjni, androidx) are looked up
in android.jar to know class from interface; the ones found nowhere get an empty stub of their
own (listed on stderr).

  api-stubs.py REACTANDROID.API ANDROID.JAR OUT_DIR
"""
import re
import struct
import sys
import zipfile
from pathlib import Path

ACC = {"public": 0x0001, "protected": 0x0004, "static": 0x0008, "final": 0x0010,
       "abstract": 0x0400, "synthetic": 0x1000}


class ClassFile:
    def __init__(self):
        self.pool = [None]
        self.index = {}

    def _add(self, key, entry):
        if key not in self.index:
            self.pool.append(entry)
            self.index[key] = len(self.pool) - 1
        return self.index[key]

    def utf8(self, s):
        b = s.encode("utf-8")
        return self._add(("utf8", s), b"\x01" + struct.pack(">H", len(b)) + b)

    def integer(self, v):
        return self._add(("int", v), b"\x03" + struct.pack(">i", v))

    def annotation_default(self, desc):
        """An AnnotationDefault attribute with the zero value of the element's type, or None."""
        ret = desc.split(")")[1]
        if ret in ("Z", "I", "B", "C", "S"):
            value = ret.encode() + struct.pack(">H", self.integer(0))
        elif ret == "Ljava/lang/String;":
            value = b"s" + struct.pack(">H", self.utf8(""))
        elif ret.startswith("["):
            value = b"[" + struct.pack(">H", 0)
        elif ret == "Ljava/lang/Class;":
            value = b"c" + struct.pack(">H", self.utf8("Ljava/lang/Object;"))
        else:
            return None
        return struct.pack(">HI", self.utf8("AnnotationDefault"), len(value)) + value

    def cls(self, name):
        i = self.utf8(name)
        return self._add(("class", name), b"\x07" + struct.pack(">H", i))

    def build(self, access, name, super_name, interfaces, fields, methods, inner, annotation=False):
        this = self.cls(name)
        sup = self.cls(super_name) if super_name else 0
        ifs = [self.cls(i) for i in interfaces]
        body = struct.pack(">HHH", access, this, sup)
        body += struct.pack(">H", len(ifs)) + b"".join(struct.pack(">H", i) for i in ifs)
        body += struct.pack(">H", len(fields))
        for acc, n, d in fields:
            body += struct.pack(">HHHH", acc, self.utf8(n), self.utf8(d), 0)
        body += struct.pack(">H", len(methods))
        for acc, n, d in methods:
            default = self.annotation_default(d) if annotation and acc & 0x0400 else None
            body += struct.pack(">HHH", acc, self.utf8(n), self.utf8(d))
            body += struct.pack(">H", 1) + default if default else struct.pack(">H", 0)
        attrs = b""
        count = 0
        if inner:
            rows = b""
            for inner_name, outer_name, simple, acc in inner:
                rows += struct.pack(">HHHH", self.cls(inner_name), self.cls(outer_name), self.utf8(simple), acc)
            attrs += struct.pack(">HI", self.utf8("InnerClasses"), 2 + len(rows)) + struct.pack(">H", len(inner)) + rows
            count += 1
        body += struct.pack(">H", count) + attrs
        pool = b"".join(self.pool[1:])
        return b"\xca\xfe\xba\xbe" + struct.pack(">HHH", 0, 52, len(self.pool)) + pool + body


def class_is_interface(data):
    """Whether a class file (from android.jar) is an interface: walk its constant pool."""
    i, count = 10, struct.unpack(">H", data[8:10])[0]
    n = 1
    while n < count:
        tag = data[i]
        if tag == 1:
            i += 3 + struct.unpack(">H", data[i + 1:i + 3])[0]
        elif tag in (3, 4, 9, 10, 11, 12, 17, 18):
            i += 5
        elif tag in (5, 6):
            i += 9
            n += 1
        elif tag in (7, 8, 16, 19, 20):
            i += 3
        elif tag == 15:
            i += 4
        else:
            raise ValueError(f"constant pool tag {tag}")
        n += 1
    return bool(struct.unpack(">H", data[i:i + 2])[0] & 0x0200)


def parse(api_text):
    classes = {}
    current = None
    header = re.compile(r"^(?P<mods>(?:[a-z]+ )+)(?P<name>[\w/$]+)(?: : (?P<supers>[^{]+))? \{$")
    member = re.compile(r"^\s+(?P<mods>(?:[a-z]+ )*)(?P<kind>fun|field) (?P<name>\S+) (?P<desc>\S+)$")
    for line in api_text.splitlines():
        if not line.strip():
            continue
        if line == "}":
            current = None
            continue
        m = header.match(line)
        if m:
            mods = m["mods"].split()
            current = {"mods": mods, "supers": [s.strip() for s in (m["supers"] or "").split(",") if s.strip()],
                       "fields": [], "methods": []}
            classes[m["name"]] = current
            continue
        m = member.match(line)
        if m and current is not None:
            acc = 0
            for mod in m["mods"].split():
                acc |= ACC.get(mod, 0)
            if m["kind"] == "fun" and m["desc"].split(")")[0].endswith("[Ljava/lang/Object;"):
                # The dump does not say which methods are varargs; Object[] last (Callback's
                # `invoke(Object... args)`, which generated specs call with plain arguments)
                # is taken as one.
                acc |= 0x0080
            current["fields" if m["kind"] == "field" else "methods"].append((acc, m["name"], m["desc"]))
            continue
        raise SystemExit(f"api-stubs: cannot read line: {line!r}")
    return classes


def main():
    api, android_jar, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    classes = parse(Path(api).read_text())
    android = zipfile.ZipFile(android_jar)
    android_names = set(n[:-6] for n in android.namelist() if n.endswith(".class"))

    def is_interface(name):
        if name in classes:
            return "interface" in classes[name]["mods"]
        if name in android_names:
            return class_is_interface(android.read(name + ".class"))
        return None

    missing = {}
    written = 0
    for name, c in classes.items():
        interface = "interface" in c["mods"]
        acc = 0x0001
        if interface:
            acc |= 0x0200 | 0x0400
            if "annotation" in c["mods"]:
                acc |= 0x2000
        else:
            acc |= 0x0020
            if "final" in c["mods"]:
                acc |= 0x0010
            if "abstract" in c["mods"]:
                acc |= 0x0400
        super_name, interfaces = None, []
        for i, s in enumerate(c["supers"]):
            kind = is_interface(s)
            if kind is None:
                # Not declared anywhere we can see: the first supertype of a class is its
                # superclass, the rest are interfaces.
                kind = interface or i > 0
                missing[s] = kind
            if kind or interface:
                interfaces.append(s)
            else:
                super_name = s
        if interface:
            super_name = "java/lang/Object"
            if "annotation" in c["mods"]:
                interfaces.append("java/lang/annotation/Annotation")
        elif super_name is None:
            super_name = "java/lang/Object"
        if super_name == "java/lang/Enum":
            acc |= 0x4000
        fields = []
        for f_acc, f_name, f_desc in c["fields"]:
            if acc & 0x4000 and f_desc == f"L{name};" and f_acc & 0x0008:
                f_acc |= 0x4000
            fields.append((f_acc, f_name, f_desc))
        inner = []
        if "$" in name:
            outer, simple = name.rsplit("$", 1)
            inner.append((name, outer, simple, 0x0001 | 0x0008 | (acc & 0x0610)))
        for other in classes:
            if other.startswith(name + "$") and "$" not in other[len(name) + 1:]:
                o_mods = classes[other]["mods"]
                o_acc = 0x0001 | 0x0008 | (0x0200 | 0x0400 if "interface" in o_mods else 0)
                inner.append((other, name, other[len(name) + 1:], o_acc))
        data = ClassFile().build(acc, name, super_name, interfaces, fields, c["methods"], inner,
                                 annotation="annotation" in c["mods"])
        path = out / (name + ".class")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written += 1
    for name, interface in sorted(missing.items()):
        if name in classes:
            continue
        acc = 0x0001 | (0x0200 | 0x0400 if interface else 0x0020)
        data = ClassFile().build(acc, name, "java/lang/Object", [], [], [], [])
        path = out / (name + ".class")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    print(f"api-stubs: {written} classes from {api}; {len(missing)} supertypes outside it stubbed empty: "
          + ", ".join(sorted(missing)), file=sys.stderr)


if __name__ == "__main__":
    main()
