"""The real graphs of the GRAND++ chapter's tables in their published on-disk formats, each file
checked by checksum before it is parsed.

- **Planetoid** (Cora, CiteSeer, PubMed; Yang et al. 2016): the eight files
  ``ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}`` of https://github.com/kimiyoung/planetoid
  (``data/``), read from ``<root>/planetoid/``. x, tx, allx are pickled SciPy sparse matrices,
  y, ty, ally one-hot NumPy arrays, graph a pickled dict of adjacency lists, test.index one node
  id a line. Pickles are read with an unpickler that builds only NumPy arrays, SciPy sparse
  matrices and plain containers, and only after the checksum matched.
- **gnn-benchmark** ``.npz`` (Coauthor-CS, Amazon Computers and Photo; Shchur et al. 2018):
  ``ms_academic_cs.npz``, ``amazon_electronics_computers.npz``, ``amazon_electronics_photo.npz``
  of https://github.com/shchur/gnn-benchmark (``data/npz/``), read from ``<root>/gnn-benchmark/``:
  CSR arrays ``adj_*`` and ``attr_*`` and ``labels``.

The checksum of every file is its git blob id (SHA-1 of ``"blob <size>\\0"`` + content) in
those repositories at the commits pinned in the URLs: what ``git hash-object FILE`` prints. They
were read from the repositories' git trees; the Planetoid files' SHA-256, computed from the
blobs, also match a third-party table of them.
"""
from __future__ import annotations

import hashlib
import io
import pickle
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import scipy.sparse as sp

from harness import DataNotFound

PLANETOID_COMMIT = "af6abf468a772cc055bec88c52e4d6f51b7c37e3"
GNN_BENCHMARK_COMMIT = "1e72912a0810cdf27ae54fd589a3b43358a2b161"
PLANETOID_URL = f"https://raw.githubusercontent.com/kimiyoung/planetoid/{PLANETOID_COMMIT}/data/"
GNN_BENCHMARK_URL = (f"https://raw.githubusercontent.com/shchur/gnn-benchmark/"
                     f"{GNN_BENCHMARK_COMMIT}/data/npz/")
PLANETOID_PARTS = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")

#: Git blob ids of the published files, by file name.
BLOB_IDS: Mapping[str, str] = {
    "ind.cora.x": "c4a91d008245403e7f26aa616b437191509793c0",
    "ind.cora.tx": "6e856d777401ee15dc8619db76c97d0a40ba2d60",
    "ind.cora.allx": "44d53b1fece343538e45592caac521d73c6f98d6",
    "ind.cora.y": "58e30ef120d3553cfaac33ff28c6b5436dbef661",
    "ind.cora.ty": "da1734ab670b5c8ecee78a9c30b35566df916f4b",
    "ind.cora.ally": "04fbd0b083d09341fcf16b395c642329637f0542",
    "ind.cora.graph": "4d3bf85dfc8b1c105a2c995597a1b3eed6947925",
    "ind.cora.test.index": "ded8092db4cd767a367eebe09003b954a5316f24",
    "ind.citeseer.x": "f094104a66f2689ffbd01085fe6a856689e9db9e",
    "ind.citeseer.tx": "b2aff18aa1fc6f4f5e8c64db7643b59b24e42584",
    "ind.citeseer.allx": "592091071ac35b78599c722d0e60b1c655711728",
    "ind.citeseer.y": "e857ac49b611da98e101a068cf4855350274f68a",
    "ind.citeseer.ty": "3795f79df0cd1123f4478b77c148a5fbacc4cefb",
    "ind.citeseer.ally": "7503f81a0b6ac1cc21cb5a97073542a6b1dfe99c",
    "ind.citeseer.graph": "a01dca663d0103c130f525017a4a9c313037e286",
    "ind.citeseer.test.index": "62d9e3d5ed53c66b069125af98529d76c70d9b3e",
    "ind.pubmed.x": "16c0eca8d2b3297014ff80327416f9332eda10d7",
    "ind.pubmed.tx": "eee4f3c988fde0da87a9ec7b01ca5e7863c1b1f1",
    "ind.pubmed.allx": "3b86bccf08111c37c632a9dd8ab63db25ea76361",
    "ind.pubmed.y": "e86670576c85340eeb2271b3c918bfa89322b2cf",
    "ind.pubmed.ty": "225a0bb9bb6430e3925d04688daf6a0da964c07a",
    "ind.pubmed.ally": "4c8bcdc80882dd225fe4dd4fafd723baa616ac97",
    "ind.pubmed.graph": "76eb87e628a6b9d43fc31ea42c8c6c8f3e52b404",
    "ind.pubmed.test.index": "41f6befcb7750cc4858cb852f2b349a9598cb2f4",
    "ms_academic_cs.npz": "9bdd7da943d86b74297e8d32e99eb64245b52835",
    "amazon_electronics_computers.npz": "8120e4148a330b3fafe37c4476823302d9d834b9",
    "amazon_electronics_photo.npz": "97323743cb56aca9dd611f5b4b46862c1c9c6bd9",
}

#: Data set name (task option ``dataset``) → (format, file stem).
DATASETS: Mapping[str, tuple[str, str]] = {
    "cora": ("planetoid", "cora"), "citeseer": ("planetoid", "citeseer"),
    "pubmed": ("planetoid", "pubmed"), "coauthor_cs": ("npz", "ms_academic_cs"),
    "computers": ("npz", "amazon_electronics_computers"),
    "photo": ("npz", "amazon_electronics_photo"),
}


@dataclass
class Graph:
    """An undirected graph read from files: edges (2, E) int64 with both directions and no
    self-loops, features (nodes, features) float64 and labels (nodes,) int64 (−1 unknown)."""

    edges: np.ndarray
    features: np.ndarray
    labels: np.ndarray


def files_of(dataset: str) -> tuple[str, list[str], str]:
    """(folder under the data root, file names, URL prefix) of a data set."""
    kind, stem = DATASETS[dataset]
    if kind == "planetoid":
        return "planetoid", [f"ind.{stem}.{part}" for part in PLANETOID_PARTS], PLANETOID_URL
    return "gnn-benchmark", [f"{stem}.npz"], GNN_BENCHMARK_URL


def blob_id(data: bytes) -> str:
    """The git blob id of the bytes (``git hash-object``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def read_checked(path: Path, checksums: Mapping[str, str] = BLOB_IDS) -> bytes:
    """The file's bytes, or :class:`DataNotFound` when it is missing or its blob id is not the
    published one."""
    if not path.is_file():
        raise DataNotFound(f"graph data: {path} is missing")
    data = path.read_bytes()
    expected, found = checksums[path.name], blob_id(data)
    if found != expected:
        raise DataNotFound(f"graph data: {path} fails its checksum: git blob id {found}, the "
                           f"published file's is {expected}; delete it and fetch it again")
    return data


def download(dataset: str, root: Path) -> None:
    """Fetch the data set's missing files from their published URLs into the data root, each
    checked before it is kept."""
    folder, names, url = files_of(dataset)
    (root / folder).mkdir(parents=True, exist_ok=True)
    for name in names:
        target = root / folder / name
        if target.is_file():
            continue
        try:
            with urllib.request.urlopen(url + name, timeout=60) as response:
                data = response.read()
        except OSError as error:
            raise DataNotFound(f"graph data: downloading {url + name} failed: {error}") from None
        if blob_id(data) != BLOB_IDS[name]:
            raise DataNotFound(f"graph data: {url + name} does not match its published checksum")
        partial = target.with_name(name + ".part")
        partial.write_bytes(data)
        partial.replace(target)


def load(dataset: str, root: Path, checksums: Mapping[str, str] = BLOB_IDS) -> Graph:
    """The data set's graph from ``root`` (see :func:`files_of` for where)."""
    folder, names, url = files_of(dataset)
    missing = [name for name in names if not (root / folder / name).is_file()]
    if missing:
        raise DataNotFound(f"graph data {dataset!r}: missing under {root / folder}: "
                           f"{', '.join(missing)}. Download them from {url} into that folder, "
                           f"or set task_options: {{download: true}}.")
    read = {name: read_checked(root / folder / name, checksums) for name in names}
    if DATASETS[dataset][0] == "planetoid":
        return planetoid(DATASETS[dataset][1], read)
    return gnn_benchmark(read[names[0]])


_PLAIN = {("collections", "defaultdict"), ("builtins", "list"), ("builtins", "dict"),
          ("builtins", "object"), ("builtins", "set"), ("copyreg", "_reconstructor"),
          ("_codecs", "encode")}  # how Python 3 writes bytes into a protocol-2 pickle
_PYTHON2 = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class _ArraysOnly(pickle.Unpickler):
    """Builds NumPy arrays, SciPy sparse matrices and plain containers, nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        plain = _PYTHON2.get(module, module)  # Planetoid's files are Python 2 pickles
        if module.startswith(("numpy", "scipy.sparse")) or (plain, name) in _PLAIN:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a graph file")


def _unpickle(data: bytes, name: str) -> Any:
    try:
        return _ArraysOnly(io.BytesIO(data), encoding="latin1").load()
    except Exception as error:  # a checked file that is still not a pickle of arrays
        raise DataNotFound(f"graph data: {name} is not a Planetoid pickle: {error}") from None


def planetoid(stem: str, files: Mapping[str, bytes]) -> Graph:
    """A Planetoid data set from its eight files' bytes, as Kipf & Welling's loader reads them:
    allx then the test rows, the test rows reordered by test.index; CiteSeer's isolated test
    ids without features get zero rows and no label."""
    part = {p: files[f"ind.{stem}.{p}"] for p in PLANETOID_PARTS}
    tx, allx = (sp.csr_matrix(_unpickle(part[p], p)) for p in ("tx", "allx"))
    ty, ally = (np.asarray(_unpickle(part[p], p)) for p in ("ty", "ally"))
    adjacency_lists = _unpickle(part["graph"], "graph")
    test_index = np.array([int(line) for line in part["test.index"].decode().split()])
    nodes = max(allx.shape[0] + tx.shape[0], int(test_index.max()) + 1, len(adjacency_lists))
    features = np.zeros((nodes, allx.shape[1]))
    labels = np.full(nodes, -1, dtype=np.int64)
    features[:allx.shape[0]] = allx.toarray()
    labels[:ally.shape[0]] = np.where(ally.any(1), ally.argmax(1), -1)
    features[test_index] = tx.toarray()
    labels[test_index] = np.where(ty.any(1), ty.argmax(1), -1)
    pairs = [(int(i), int(j)) for i, neighbours in adjacency_lists.items() for j in neighbours]
    return Graph(_undirected(np.array(pairs, dtype=np.int64).T.reshape(2, -1), nodes),
                 features, labels)


def gnn_benchmark(data: bytes) -> Graph:
    """A gnn-benchmark ``.npz`` (CSR adjacency and attributes, labels)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        adjacency = sp.csr_matrix((arrays["adj_data"], arrays["adj_indices"], arrays["adj_indptr"]),
                                  shape=tuple(arrays["adj_shape"]))
        attributes = sp.csr_matrix((arrays["attr_data"], arrays["attr_indices"],
                                    arrays["attr_indptr"]), shape=tuple(arrays["attr_shape"]))
        labels = np.asarray(arrays["labels"], dtype=np.int64)
    rows, columns = adjacency.nonzero()
    return Graph(_undirected(np.stack([rows, columns]).astype(np.int64), adjacency.shape[0]),
                 attributes.toarray().astype(np.float64), labels)


def _undirected(edges: np.ndarray, nodes: int) -> np.ndarray:
    """Both directions of every edge, once each, self-loops dropped."""
    both = np.concatenate([edges, edges[::-1]], axis=1)
    both = both[:, both[0] != both[1]]
    return np.unique(both, axis=1) if both.size else np.zeros((2, 0), dtype=np.int64)
