#!/usr/bin/env python3
"""Independent reference implementation of quiver's canonical key encoding.

Written from the specification in docs/digest.md (key format version 1), with the Python
standard library only. It defines the golden test calls, encodes them, hashes them, and
writes tests/golden/digest_vectors.json, which the C++ tests (tests/unit/digest_test.cpp)
check quiver against.

Usage:
  digest_reference.py            write tests/golden/digest_vectors.json
  digest_reference.py --check    regenerate in memory; exit 1 when the committed file or the
                                 worked example in docs/digest.md differ from it
  digest_reference.py --example  print the worked example of docs/digest.md (Markdown)

Vector descriptions use the JSON form of quiver's from_json (core/json.hpp), plus one
escape that only the tests understand: {"$float": "nan" | "inf" | "-inf" | "0x<16 hex>"}
stands for a float64 that JSON cannot write (the hex form gives the IEEE-754 bits).
"""

import base64
import hashlib
import json
import math
import pathlib
import struct
import sys

KEY_MAGIC = b"QVRKEY"
KEY_FORMAT_VERSION = 1
CANONICAL_NAN = 0x7FF8000000000000

# Value kind tags (one byte before every value).
NULL, BOOL, INT, FLOAT, STRING, BYTES, ARRAY, LIST, MAP, OBJECT = range(10)

# dtype name -> (code, struct format of one scalar component, components per element)
DTYPES = {
    "int8": (1, "b", 1),
    "int16": (2, "h", 1),
    "int32": (3, "i", 1),
    "int64": (4, "q", 1),
    "uint8": (5, "B", 1),
    "uint16": (6, "H", 1),
    "uint32": (7, "I", 1),
    "uint64": (8, "Q", 1),
    "float32": (9, "f", 1),
    "float64": (10, "d", 1),
    "complex64": (11, "f", 2),
    "complex128": (12, "d", 2),
}

HERE = pathlib.Path(__file__).resolve().parent
GOLDEN = HERE / "digest_vectors.json"
SPEC = HERE.parent.parent / "docs" / "digest.md"


class F64Bits:
    """A float64 given by its IEEE-754 bit pattern (NaN payloads, infinities)."""

    def __init__(self, bits):
        self.bits = bits


class Arr:
    """An n-dimensional array: dtype name, shape, flat C-order elements (complex: (re, im))."""

    def __init__(self, dtype, shape, data):
        count = 1
        for d in shape:
            count *= d
        assert count == len(data), "shape and data disagree"
        self.dtype, self.shape, self.data = dtype, list(shape), list(data)


class Obj:
    """A serialised user object: type name, archive kind, opaque blob."""

    def __init__(self, type_name, archive, blob):
        self.type_name, self.archive, self.blob = type_name, archive, blob


class Call:
    def __init__(self, function, version, args):
        self.function, self.version, self.args = function, version, args


# ---------------------------------------------------------------------------- encoding


def u8(x):
    return struct.pack("<B", x)


def u32(x):
    return struct.pack("<I", x)


def u64(x):
    return struct.pack("<Q", x)


def enc_bytes(b):
    return u64(len(b)) + b


def enc_str(s):
    return enc_bytes(s.encode("utf-8"))


def float_bits(x):
    if isinstance(x, F64Bits):
        return x.bits
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def is_nan_bits(bits):
    return (bits >> 52) & 0x7FF == 0x7FF and bits & ((1 << 52) - 1) != 0


def enc_element(fmt, x):
    if fmt == "d":
        return u64(float_bits(x))  # bit-exact: array NaNs are not canonicalised
    return struct.pack("<" + fmt, x)


def enc_array(a):
    code, fmt, parts = DTYPES[a.dtype]
    body = b""
    for x in a.data:
        for part in (x if parts == 2 else (x,)):
            body += enc_element(fmt, part)
    out = u8(code) + u64(len(a.shape))
    for d in a.shape:
        out += u64(d)
    return out + u64(len(body)) + body


def enc_map(m):
    items = sorted(((k.encode("utf-8"), v) for k, v in m.items()), key=lambda kv: kv[0])
    out = u64(len(items))
    for k, v in items:
        out += enc_bytes(k) + enc_value(v)
    return out


def enc_value(v):
    if v is None:
        return u8(NULL)
    if isinstance(v, bool):
        return u8(BOOL) + u8(1 if v else 0)
    if isinstance(v, int):
        assert -(2**63) <= v < 2**63, "int64 out of range"
        return u8(INT) + struct.pack("<q", v)
    if isinstance(v, (float, F64Bits)):
        bits = float_bits(v)
        return u8(FLOAT) + u64(CANONICAL_NAN if is_nan_bits(bits) else bits)
    if isinstance(v, str):
        return u8(STRING) + enc_str(v)
    if isinstance(v, bytes):
        return u8(BYTES) + enc_bytes(v)
    if isinstance(v, Arr):
        return u8(ARRAY) + enc_array(v)
    if isinstance(v, list):
        return u8(LIST) + u64(len(v)) + b"".join(enc_value(x) for x in v)
    if isinstance(v, dict):
        return u8(MAP) + enc_map(v)
    if isinstance(v, Obj):
        return u8(OBJECT) + enc_str(v.type_name) + enc_str(v.archive) + enc_bytes(v.blob)
    raise TypeError("cannot encode %r" % (v,))


def canonical_bytes(call):
    assert call.function, "a call needs a non-empty function name"
    return (KEY_MAGIC + u32(KEY_FORMAT_VERSION) + enc_str(call.function) +
            enc_str(call.version) + enc_map(call.args))


def digest(call):
    return hashlib.sha256(canonical_bytes(call)).hexdigest()


# ------------------------------------------------------------- JSON descriptions (from_json)


def describe_float(x):
    bits = float_bits(x)
    if isinstance(x, F64Bits):
        return {"$float": "0x%016x" % bits}
    if math.isnan(x):
        return {"$float": "nan"}
    if math.isinf(x):
        return {"$float": "inf" if x > 0 else "-inf"}
    return x


def describe_element(dtype, x):
    if DTYPES[dtype][2] == 2:
        return [describe_float(x[0]), describe_float(x[1])]
    return describe_float(x) if dtype.startswith("float") else x


def describe(v):
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, (float, F64Bits)):
        return describe_float(v)
    if isinstance(v, bytes):
        return {"$bytes": base64.b64encode(v).decode("ascii")}
    if isinstance(v, Arr):
        data = [describe_element(v.dtype, x) for x in v.data]
        return {"$array": {"dtype": v.dtype, "shape": v.shape, "data": data}}
    if isinstance(v, list):
        return [describe(x) for x in v]
    if isinstance(v, dict):
        out = {k: describe(x) for k, x in v.items()}
        if len(out) == 1 and next(iter(out)).startswith("$"):
            return {"$map": out}
        return out
    if isinstance(v, Obj):
        return {"$object": {"type": v.type_name, "archive": v.archive,
                            "blob": base64.b64encode(v.blob).decode("ascii")}}
    raise TypeError("cannot describe %r" % (v,))


# --------------------------------------------------------------------------- the vectors

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
WORKED_EXAMPLE = "worked_example"


def vectors():
    """(name, Call) pairs; names are unique identifiers."""
    v = []

    def add(name, function, version, args):
        v.append((name, Call(function, version, args)))

    def one(name, value, key="x"):
        add(name, "golden.value", "1", {key: value})

    add(WORKED_EXAMPLE, "heat.solve", "2", {"n": 3, "dt": 0.5})
    add("no_args_empty_version", "f", "", {})
    add("unicode_function_and_version", "модель.run", "v2.0-β", {})
    add("long_function_name", "pkg.sub." + "x" * 200, "1.0.0+build.7", {})

    one("null", None)
    one("bool_true", True)
    one("bool_false", False)
    one("int_zero", 0)
    one("int_one", 1)
    one("int_minus_one", -1)
    one("int_min", I64_MIN)
    one("int_max", I64_MAX)
    one("int_two_pow_32", 2**32)
    one("float_one", 1.0)
    one("string_one", "1")
    one("float_zero", 0.0)
    one("float_negative_zero", -0.0)
    one("float_fraction", 0.1)
    one("float_third", 1.0 / 3.0)
    one("float_large", 1e300)
    one("float_min_subnormal", 5e-324)
    one("float_inf", math.inf)
    one("float_negative_inf", -math.inf)
    one("float_nan", math.nan)
    one("float_nan_negative", F64Bits(0xFFF8000000000000))
    one("float_nan_signalling", F64Bits(0x7FF0000000000001))
    one("float_nan_payload", F64Bits(0x7FFFFFFFFFFFFFFF))
    one("string_empty", "")
    one("string_ascii", "hello, world")
    one("string_unicode", "héllo 中文 😀")
    one("string_with_nul", "a\u0000b")
    one("string_escapes", "quote\" backslash\\ newline\n tab\t")
    one("bytes_empty", b"")
    one("bytes_all_values", bytes(range(256)))
    one("bytes_utf8_text_is_not_a_string", "abc".encode("utf-8"))

    one("array_int8", Arr("int8", [3], [-128, 0, 127]))
    one("array_int16", Arr("int16", [3], [-32768, 1, 32767]))
    one("array_int32", Arr("int32", [3], [-(2**31), -1, 2**31 - 1]))
    one("array_int64", Arr("int64", [3], [I64_MIN, -1, I64_MAX]))
    one("array_uint8", Arr("uint8", [3], [0, 1, 255]))
    one("array_uint16", Arr("uint16", [3], [0, 258, 65535]))
    one("array_uint32", Arr("uint32", [3], [0, 16909060, 2**32 - 1]))
    one("array_uint64", Arr("uint64", [3], [0, 72623859790382856, 2**64 - 1]))
    one("array_float32", Arr("float32", [4], [1.5, -0.0, 0.1, 3.4028234663852886e38]))
    one("array_float64", Arr("float64", [4], [1.5, -0.0, 0.1, 5e-324]))
    one("array_float64_specials_kept_bit_exact",
        Arr("float64", [4], [math.inf, -math.inf, F64Bits(0x7FF8000000000001),
                             F64Bits(0xFFF8000000000000)]))
    one("array_complex64", Arr("complex64", [2], [(1.0, 2.0), (-0.5, 0.25)]))
    one("array_complex128", Arr("complex128", [2], [(0.1, -0.0), (1e300, -1e-300)]))
    one("array_rank0_float64", Arr("float64", [], [42.0]))
    one("array_rank0_int32", Arr("int32", [], [-7]))
    one("array_one_element_rank1", Arr("float64", [1], [42.0]))
    one("array_zero_size", Arr("float64", [0], []))
    one("array_zero_size_rank3", Arr("int32", [2, 0, 3], []))
    one("array_2x3", Arr("float64", [2, 3], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
    one("array_3x2", Arr("float64", [3, 2], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
    one("array_rank3_int16", Arr("int16", [2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8]))

    one("list_empty", [])
    one("list_mixed", [1, "two", 3.0, None, True, b"\x00"])
    one("list_nested", [1, [2, [3, []]], "x"])
    one("map_empty", {})
    one("map_nested", {"outer": {"inner": {"deep": [{"k": 1}]}}})
    one("map_single_dollar_key", {"$array": 1})
    one("map_single_dollar_map_key", {"$map": {"$bytes": "not bytes"}})
    one("object_text", Obj("demo::Point", "text",
                           b"22 serialization::archive 19 0 0 1.5 2.5"))
    one("object_binary", Obj("demo::Grid<double>", "binary", bytes([0, 1, 2, 255, 254])))
    one("object_empty_blob", Obj("demo::Empty", "xml", b""))

    add("args_key_order_bytewise", "golden.keys", "1", {
        "b": 1, "a": 2, "B": 3, "": 4, "a\u0000": 5, "ab": 6, "é": 7, "z": 8,
        "\u007f": 9, "\u0080": 10, "\uff61": 11, "😀": 12, "aa": 13, "a b": 14,
    })
    add("args_reverse_insertion_order", "golden.keys", "1", {"c": 3, "b": 2, "a": 1})
    add("args_sorted_insertion_order", "golden.keys", "1", {"a": 1, "b": 2, "c": 3})
    add("args_single_dollar_key", "golden.keys", "1", {"$x": 1})
    add("args_prefix_keys", "golden.keys", "1", {"ab": 1, "a": 2, "abc": 3})
    add("args_every_kind", "golden.every", "3.1", {
        "null": None,
        "bool": True,
        "int": -1234567890123,
        "float": 3.25,
        "string": "s",
        "bytes": b"\x00\xff",
        "array": Arr("int32", [2, 2], [1, 2, 3, 4]),
        "list": [1, "a"],
        "map": {"k": "v", "n": None},
        "object": Obj("demo::Point", "text", b"1 2"),
    })
    add("args_list_of_maps", "golden.nested", "1", {
        "layers": [{"name": "a", "size": 3}, {"name": "b", "size": [1, 2]}, {}],
    })
    return v


def build():
    out = []
    for name, call in vectors():
        raw = canonical_bytes(call)
        out.append({
            "name": name,
            "call": {"function": call.function, "version": call.version,
                     "args": describe(call.args)},
            "canonical_hex": raw.hex(),
            "digest": hashlib.sha256(raw).hexdigest(),
        })
    names = [x["name"] for x in out]
    assert len(set(names)) == len(names), "vector names must be unique"
    doc = {
        "key_format_version": KEY_FORMAT_VERSION,
        "spec": "docs/digest.md",
        "generator": "tests/golden/digest_reference.py",
        "vectors": out,
    }
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


# ----------------------------------------------------------------------- worked example


def example_markdown():
    call = dict(vectors())[WORKED_EXAMPLE]
    raw = canonical_bytes(call)
    lines = ["```"]
    for off in range(0, len(raw), 16):
        chunk = raw[off:off + 16]
        hexes = " ".join("%02x" % b for b in chunk)
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append("%08x  %-47s  |%s|" % (off, hexes, text))
    lines.append("```")
    lines.append("")
    lines.append("%d bytes; digest `%s`" % (len(raw), hashlib.sha256(raw).hexdigest()))
    return "\n".join(lines) + "\n"


def main(argv):
    text = build()
    if len(argv) > 1 and argv[1] == "--example":
        sys.stdout.write(example_markdown())
        return 0
    if len(argv) > 1 and argv[1] == "--check":
        ok = True
        committed = GOLDEN.read_text(encoding="utf-8") if GOLDEN.exists() else ""
        if committed != text:
            ok = False
            sys.stderr.write("%s differs from the reference implementation; "
                             "regenerate it with %s\n" % (GOLDEN, argv[0]))
        spec = SPEC.read_text(encoding="utf-8") if SPEC.exists() else ""
        if example_markdown() not in spec:
            ok = False
            sys.stderr.write("the worked example in %s is out of date; "
                             "print it with %s --example\n" % (SPEC, argv[0]))
        return 0 if ok else 1
    if len(argv) > 1:
        sys.stderr.write(__doc__)
        return 2
    GOLDEN.write_text(text, encoding="utf-8")
    sys.stdout.write("wrote %d vectors to %s\n" % (len(vectors()), GOLDEN))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
