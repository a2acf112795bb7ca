"""The randomized generator: random projects and random stages."""

from __future__ import annotations

import os
import random
from pathlib import Path

from mutations import Stages
from projects import header_text
from workspace import TU, Scenario


# --- the randomized generator --------------------------------------------------------------

R_DIRS = ["inc", "inc/sub", "lib/include", "third/x/include", "gen"]
R_FLAGS: dict[str, list[str]] = {
    "opt": ["-O0", "-O1", "-O2", "-Os"],
    "debug": ["", "-g", "-g0", "-g1", "-g -gsplit-dwarf"],
    "warn": ["", "-Wall", "-Wall -Wextra"],
    "pic": ["", "-fPIC"],
    "sections": ["", "-ffunction-sections", "-ffunction-sections -fdata-sections"],
    "dep": ["", "", "-MD", "-MMD", "-MD -MF obj/{tu}.dep", "-MMD -MT custom-target"],
    "cov": ["", "", "", "", "--coverage"],
    "macro": ["-DVAL=1", "-DVAL=2", "-DVAL=3 -DEXTRA"],
    "side": ["", "", "", "-fstack-usage"],
}
R_OUTPUT_FORMS = [["-o", "{}"], ["-o{}"], ["--output={}"]]
R_STD = {"c": ["", "-std=c11", "-std=gnu17"],
         "c++": ["", "-std=c++14", "-std=c++17", "-std=gnu++20"]}
R_COMPILERS = {"c": ["gcc", "clang"], "c++": ["g++", "clang++"]}


def _r_header(i: int, deps: list[tuple[str, str]]) -> str:
    inc = [f'"{n}"' if form == "q" else f"<{n}>" for n, form in deps]
    value = " + ".join([str(i)] + [f"h{Path(n).stem[1:]}_value()" for n, _ in deps])
    return header_text(f"h{i}", f"H{i}_GUARD", inc, value,
                   f"/* header {i} */\nstatic inline int h{i}_w(void) {{ int /* w */ u{i}; "
                   "return 0; }\n")


def random_project(s: Scenario, rng: random.Random) -> None:
    """A small random project: headers in random nested directories including
    each other, 2-3 TUs in C or C++ with random flags and include-path forms."""
    st = s.random_state
    n = rng.randint(3, 7)
    headers = []  # (index, dir, include name, form)
    for i in range(n):
        d = rng.choice(R_DIRS)
        name = rng.choice([f"h{i}.h", f"p{i}/h{i}.h", f"a/b{i}/h{i}.h"])
        headers.append((i, d, name, rng.choice("qqa")))
    for i, d, name, _ in headers:
        later = [(h[2], h[3]) for h in headers[i + 1:]]
        s.write(f"{d}/{name}", _r_header(i, rng.sample(later, min(len(later), rng.randint(0, 2)))))
    for d in ("build/include", "build/obj", "q", "cpd"):
        s.mkdir(d)
    dirs = sorted({h[1] for h in headers})
    st.update(headers=[list(h) for h in headers], dirs=dirs, shadows=[], probes=[])
    s.tus = [_random_tu(s, rng, j, headers, dirs) for j in range(rng.randint(2, 3))]
    if rng.random() < 0.3:
        d = rng.choice(dirs)
        s.setenv("CPATH", s.abs(d))
    if rng.random() < 0.2:
        s.setenv("LC_ALL", "C.UTF-8")


def _random_tu(s: Scenario, rng: random.Random, j: int, headers: list, dirs: list[str]) -> TU:
    lang = rng.choice(["c", "c++"])
    path = rng.choice([f"src/s{j}", f"src/m/s{j}", f"app/s{j}"]) + (".c" if lang == "c" else ".cc")
    used = rng.sample(headers, rng.randint(1, min(3, len(headers))))
    probes = [f"opt{j}.h", f"p/opt{j}.h"]
    incl = "".join(f'#include "{h[2]}"\n' if h[3] == "q" else f"#include <{h[2]}>\n" for h in used)
    probe = "".join(f'#if __has_include("{p}")\n#include "{p}"\n#endif\n' for p in probes)
    body = " + ".join(f"h{h[0]}_value()" for h in used)
    date = ("static const char kiln_date[] __attribute__((used)) = __DATE__;\n"
            if rng.random() < 0.1 else "")  # (kiln does not cache these: rarely)
    s.write(path, f"/* source {j} */\n{incl}{probe}{date}"
                  f"static const int kiln_mark_s{j} __attribute__((used)) = 1;\n"
                  f"int s{j}_value(void) {{\n  int /* c */ unused{j};\n"
                  f"  return {body} + VAL;\n}}\n")
    s.random_state["probes"].append(probes)
    in_build = rng.random() < 0.7
    cwd = s.rel("build") if in_build else s.checkout
    up = ".." if in_build else "."
    flags = {k: rng.choice(v) for k, v in R_FLAGS.items()}
    flags["std"] = rng.choice(R_STD[lang])
    inc = ["-Iinclude" if in_build else "-Ibuild/include"]
    for d in rng.sample(dirs, len(dirs)):
        inc += rng.choice([[f"-I{up}/{d}"], ["-I", f"{up}/{d}"], [f"-I./{up}/{d}"],
                           [f"-I{up}/{d}/../{Path(d).name}"], ["-isystem", f"{up}/{d}"],
                           [f"-I{s.abs(d)}"]])
    if rng.random() < 0.5:
        inc += ["-iquote", f"{up}/q"]
    if rng.random() < 0.3:
        inc.append("-I.")
    if rng.random() < 0.3:
        inc += ["-include", rng.choice(headers)[2]]
    obj = f"obj/s{j}.o" if in_build else f"build/obj/s{j}.o"
    tu = TU(f"s{j}", rng.choice(R_COMPILERS[lang]), cwd, path, [])
    s.random_state.setdefault("tus", {})[tu.name] = {
        "flags": flags, "inc": inc, "src": f"{up}/{path}", "obj": obj,
        "oform": rng.randrange(len(R_OUTPUT_FORMS))}
    _compose(tu, s.random_state["tus"][tu.name])
    return tu


def _compose(tu: TU, parts: dict) -> None:
    flags = [w for v in parts["flags"].values() for w in v.format(tu=tu.name).split()]
    if not tu.cwd.endswith("build"):
        flags = [f.replace("obj/", "build/obj/") for f in flags]
    out = [w.format(parts["obj"]) for w in R_OUTPUT_FORMS[parts.get("oform", 0)]]
    tu.args = [*flags, *parts["inc"], "-c", parts["src"], *out]


def _r_edit_header(s: Scenario, rng: random.Random) -> str:
    _, d, name, _ = rng.choice(s.random_state["headers"])
    s.set_mark(f"{d}/{name}")
    return f"edit {d}/{name}"


def _r_touch(s: Scenario, rng: random.Random) -> str:
    _, d, name, _ = rng.choice(s.random_state["headers"])
    s.touch(f"{d}/{name}", rng.choice([None, 300]))
    return f"touch {d}/{name}"


def _r_shadow(s: Scenario, rng: random.Random) -> str:
    _, d, name, _ = rng.choice(s.random_state["headers"])
    tu = rng.choice(s.tus)
    places = [os.path.dirname(tu.source), "build", "build/include", "q", "cpd", *R_DIRS]
    dst = f"{rng.choice(places)}/{name}".lstrip("/")
    if s.exists(dst):
        return ""
    s.shadow(f"{d}/{name}", dst)
    s.random_state["shadows"].append(dst)
    return f"new {dst} (same name as {d}/{name})"


def _r_unshadow(s: Scenario, rng: random.Random) -> str:
    if not s.random_state["shadows"]:
        return ""
    dst = s.random_state["shadows"].pop(rng.randrange(len(s.random_state["shadows"])))
    s.remove(dst)
    return f"remove {dst}"


def _r_probe(s: Scenario, rng: random.Random) -> str:
    probe = rng.choice(rng.choice(s.random_state["probes"]))
    place = rng.choice([*s.random_state["dirs"], "q", "cpd", "build/include"])
    dst = f"{place}/{probe}"
    if s.exists(dst):
        s.remove(dst)
        return f"remove {dst} (a __has_include target)"
    k = s.fresh_mark()
    s.write(dst, header_text(f"opt{k}", f"OPT{k}_H", [], str(k)))
    return f"new {dst} (a __has_include target)"


def _r_flag(s: Scenario, rng: random.Random) -> str:
    tu = rng.choice(s.tus)
    parts = s.random_state["tus"][tu.name]
    key = rng.choice(list(R_FLAGS) + ["std"])
    choices = R_FLAGS.get(key) or R_STD[tu.lang]
    parts["flags"][key] = rng.choice(choices)
    _compose(tu, parts)
    return f"{tu.name}: {key} -> {parts['flags'][key] or '(none)'}"


def _r_env(s: Scenario, rng: random.Random) -> str:
    name = rng.choice(["CPATH", "C_INCLUDE_PATH", "CPLUS_INCLUDE_PATH", "SOURCE_DATE_EPOCH",
                       "LC_ALL", "GCC_COLORS"])
    values = {"SOURCE_DATE_EPOCH": ["1000000000", "1600000000", None],
              "LC_ALL": ["C.UTF-8", None], "GCC_COLORS": ["warning=01;32", None]}.get(
        name, [s.abs("cpd"), s.abs(rng.choice(s.random_state["dirs"])), None])
    value = rng.choice(values)
    s.setenv(name, value)
    return f"{name}={value}" if value else f"unset {name}"


def _r_comment(s: Scenario, rng: random.Random) -> str:
    tu = rng.choice(s.tus)
    old, new = rng.choice([("/* c */", "/* a longer comment */"),
                           ("  return", "    return "), ("/* source", "/*\n   source")])
    text = s.ws.path(s.rel(tu.source)).read_text()
    if old not in text:
        return ""
    s.replace(tu.source, old, new)
    return f"comment/whitespace edit in {tu.source}"


R_OPS = [_r_edit_header, _r_touch, _r_shadow, _r_shadow, _r_unshadow, _r_probe, _r_flag, _r_env,
         _r_comment]


def random_stages(s: Scenario) -> Stages:
    rng = random.Random(f"{s.name}/stages")
    for _ in range(rng.randint(2, 6)):
        label = ""
        while not label:
            label = rng.choice(R_OPS)(s, rng)
        yield label
