"""The datasets the suite reads, each pinned to an upstream commit, with a sha256 per file.

    from pipelines.registry import DATASETS, get
    get("olivetti").files[0].url   # raw URL at the pinned commit
    get("bccd").size               # bytes, all files

An entry names its folder under the data root, the upstream `Origin`s (a file, or a folder
prefix, mapped to a URL), its license line, citation and which loader reads it; the files
themselves (path, size, sha256) come from `manifest.json` beside this module, written by
`python -m pipelines.registry.make_manifest KIT` from a kit that is byte-identical to upstream.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

MANIFEST = Path(__file__).with_name("manifest.json")
_RAW = "https://raw.githubusercontent.com"


@dataclasses.dataclass(frozen=True)
class Origin:
    """`local` (a file path, or a folder prefix ending in "/", "" for all) under the dataset's
    folder comes from `url` (the file's URL, or the URL prefix the rest of the path extends).
    `package` ("gensim/test/test_data/"): an installed package folder tried before the URL."""

    local: str
    url: str
    package: str = ""

    def matches(self, path: str) -> bool:
        return path == self.local or (self.local.endswith("/") or not self.local) and path.startswith(self.local)

    def url_for(self, path: str) -> str:
        return self.url if path == self.local else self.url + path[len(self.local):]

    def package_path_for(self, path: str) -> str:
        if not self.package:
            return ""
        return self.package if path == self.local else self.package + path[len(self.local):]


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """One file of a dataset: `path` under the dataset folder, its size and sha256, where it
    comes from. `unpack`: the archive is unpacked into this folder (under the dataset folder)
    instead of being kept."""

    path: str
    size: int
    sha256: str
    url: str
    package_path: str = ""  # "gensim/test/test_data/x.txt": copied from the installed package
    unpack: str = ""


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    folder: str  # under the data root
    title: str
    license: str
    citation: str
    used_by: str  # the loader / task that reads it
    upstream: str  # repository@commit, for people
    origins: tuple[Origin, ...] = ()
    data_sources: tuple[str, ...] = ()  # config `data.source` values that read this dataset
    files: tuple[FileEntry, ...] = ()

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def with_files(self, rows: list[list]) -> Dataset:
        """Fills `files` from manifest rows [path, size, sha256] through the origins."""
        files = []
        for path, size, sha256 in rows:
            origin = self.origin_for(path)
            files.append(FileEntry(path, int(size), sha256, origin.url_for(path), origin.package_path_for(path)))
        return dataclasses.replace(self, files=tuple(files))

    def origin_for(self, path: str) -> Origin:
        matches = [o for o in self.origins if o.matches(path)]
        if not matches:
            raise ValueError(f"{self.name}: no upstream origin covers {path!r}; add one to the registry.")
        return max(matches, key=lambda o: len(o.local))


def _gh(repo: str, commit: str, path: str = "") -> str:
    return f"{_RAW}/{repo}/{commit}/{path}"


_BCCD = "Shenggan/BCCD_Dataset", "d272fb14cdff6e473fafeeeba32aba5f560e9e43"
_MULTI30K = "multi30k/dataset", "a3d2e0d26b56f3846f66a952536ffed4e401d05a"
_OLIVETTI = "sjgershm/DBM", "a30d9abb523aab874a299b8b1aa21e7df2023f60"
_NLTK = "nltk/nltk_data", "5db857e"  # gh-pages; the kit's SOURCE.md names this short commit
_GENSIM = "piskvorky/gensim", "37f90ec121eb7cd401448a947e80953e0c53ccdc"
_NEURAL_STYLE = "jcjohnson/neural-style", "07c4b8299f8fbdafec0c514fc820ff1d7ff62e46"
_FAST_STYLE = "lengstrom/fast-style-transfer", "0d3d981f7ab948253d355585bdbdfa914247b4d0"
_VGG_STYLE = "johnny7861532/Keras-VGG16-style-transfer", "c757c0def14d35532f8c43448000f88c907e2013"
_NLTK_CORPORA = ("brown", "abc", "movie_reviews", "state_union", "webtext", "inaugural")

_STYLE_FILES = {  # path in style-images/ -> (repo, commit, upstream path)
    "style/starry_night.jpg": (*_NEURAL_STYLE, "examples/inputs/starry_night.jpg"),
    "style/the_scream.jpg": (*_NEURAL_STYLE, "examples/inputs/the_scream.jpg"),
    "style/shipwreck.jpg": (*_NEURAL_STYLE, "examples/inputs/shipwreck.jpg"),
    "style/woman-with-hat-matisse.jpg": (*_NEURAL_STYLE, "examples/inputs/woman-with-hat-matisse.jpg"),
    "style/great_wave.jpg": (*_FAST_STYLE, "examples/style/wave.jpg"),
    "style/udnie_picabia.jpg": (*_FAST_STYLE, "examples/style/udnie.jpg"),
    "style/monet.jpg": (*_VGG_STYLE, "style/monet.jpg"),
    "style/mona_lisa.jpg": (*_VGG_STYLE, "style/Mona-Lisa.jpg"),
    "content/tubingen.jpg": (*_NEURAL_STYLE, "examples/inputs/tubingen.jpg"),
    "content/golden_gate.jpg": (*_NEURAL_STYLE, "examples/inputs/golden_gate.jpg"),
    "content/hoovertowernight.jpg": (*_NEURAL_STYLE, "examples/inputs/hoovertowernight.jpg"),
    "LICENSE.jcjohnson-neural-style": (*_NEURAL_STYLE, "LICENSE"),
}

ENTRIES: tuple[Dataset, ...] = (
    Dataset(
        name="bccd", folder="bccd", title="BCCD blood cells: 364 JPEG 640x480, VOC boxes, 3 classes",
        license="MIT (c) 2017 shenggan",
        citation="Shenggan, BCCD Dataset, github.com/Shenggan/BCCD_Dataset (2017)",
        used_by="pipelines.datasets.bccd (detection data.source=bccd, classification data.source=bccd_cells)",
        upstream=f"{_BCCD[0]}@{_BCCD[1]}",
        origins=(Origin("", _gh(*_BCCD)),),
        data_sources=("bccd", "bccd_cells"),
    ),
    Dataset(
        name="multi30k", folder="multi30k", title="Multi30k en-de raw text: train 29,000, val 1,014, test2016 1,000",
        license="no license file; non-commercial research and educational use (Flickr30K terms)",
        citation="Elliott et al. 2016, Multi30K: Multilingual English-German Image Descriptions",
        used_by="pipelines.datasets.parallel.load_multi30k (seq2seq data.source=multi30k)",
        upstream=f"{_MULTI30K[0]}@{_MULTI30K[1]} data/task1/raw",
        origins=(Origin("raw/", _gh(*_MULTI30K, "data/task1/raw/")),),
        data_sources=("multi30k",),
    ),
    Dataset(
        name="olivetti", folder="olivetti-faces", title="Olivetti/ORL faces: 40 people x 10 grey 64x64 images",
        license="none stated; free for research, credit the Olivetti Research Laboratory",
        citation="Samaria & Harter 1994, Parameterisation of a stochastic model for human face identification",
        used_by="pipelines.datasets.olivetti (classification and faces data.source=olivetti)",
        upstream=f"{_OLIVETTI[0]}@{_OLIVETTI[1]} olivettifaces.mat",
        origins=(Origin("olivettifaces.mat", _gh(*_OLIVETTI, "olivettifaces.mat")),),
        data_sources=("olivetti",),
    ),
    Dataset(
        name="nltk-corpora", folder="nltk_data",
        title="NLTK corpora brown, abc, movie_reviews, state_union, webtext, inaugural (4.46M words)",
        license="Brown non-commercial; inaugural public domain; others none stated (research use)",
        citation="Bird, Klein & Loper 2009, Natural Language Processing with Python (NLTK data)",
        used_by="pipelines.datasets.corpus (embeddings data.source=nltk), NLTK readers on <root>/nltk_data",
        upstream=f"{_NLTK[0]}@{_NLTK[1]} packages/corpora (the zips nltk.download installs)",
        origins=(Origin("corpora/", _gh(*_NLTK, "packages/corpora/")),),
        data_sources=("nltk",),
    ),
    Dataset(
        name="word-eval", folder="word-eval",
        title="Google analogies, WordSim353, SimLex-999, Lee corpus (from gensim's test data)",
        license="analogies Apache-2.0 (word2vec); WordSim353, SimLex-999, Lee: research use, none stated",
        citation="Mikolov et al. 2013; Finkelstein et al. 2002; Hill, Reichart & Korhonen 2015",
        used_by="tasks.embeddings evaluation (analogies, WordSim353, SimLex-999; falls back to gensim's copies)",
        upstream=f"{_GENSIM[0]}@{_GENSIM[1]} gensim/test/test_data (installed with gensim: no download)",
        origins=(Origin("", _gh(*_GENSIM, "gensim/test/test_data/"), package="gensim/test/test_data/"),),
    ),
    Dataset(
        name="style-images", folder="style-images", title="8 public-domain paintings (style/) and 3 photos (content/)",
        license="paintings public domain; the 3 photos unknown (from jcjohnson/neural-style, MIT)",
        citation="Gatys, Ecker & Bethge 2016; images from jcjohnson/neural-style, lengstrom/fast-style-transfer",
        used_by="tasks.style (style data.source=style-images): Gatys content/style images, the stylizer's photos",
        upstream="jcjohnson/neural-style, lengstrom/fast-style-transfer, johnny7861532/Keras-VGG16-style-transfer",
        origins=tuple(Origin(local, _gh(repo, commit, path)) for local, (repo, commit, path) in _STYLE_FILES.items()),
        data_sources=("style-images",),
    ),
)


@functools.cache
def datasets() -> dict[str, Dataset]:
    """Every dataset by name, with its files from manifest.json."""
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return {d.name: d.with_files(manifest.get(d.name, [])) for d in ENTRIES}


def get(name: str) -> Dataset:
    known = datasets()
    if name not in known:
        raise ValueError(f"Unknown dataset {name!r}. Expected one of: {', '.join(known)}")
    return known[name]


def for_data_source(source: str) -> list[Dataset]:
    """The datasets a config's `data.source` reads (none for generated or user data)."""
    return [d for d in datasets().values() if source in d.data_sources]


def fetch_hint(name: str) -> str:
    """The sentence a loader adds when dataset `name` is missing from the data root."""
    return (f"Fetch it with `kts data fetch {name}` (needs a network; `kts data list` shows where it goes), "
            "or point the suite at a data root that holds it with --data-root DIR or KTS_DATA.")
