#include "m2m/row_ops.h"

#include <algorithm>

#include "m2m/identifiers.h"

namespace m2m {
namespace {

// Later values of the same column replace earlier ones; new columns are appended.
void Merge(Row& into, const Row& from) {
  for (const ColumnValue& cv : from) {
    auto it = std::find_if(into.begin(), into.end(), [&](const ColumnValue& x) { return x.column == cv.column; });
    if (it == into.end()) {
      into.push_back(cv);
    } else {
      it->value = cv.value;
    }
  }
}

// The state after `prev` then `next` for the same key (docs/mapping.md, "Coalescing").
void Fold(DocumentOp& prev, DocumentOp next) {
  if (next.kind == DocumentOpKind::kNone) return;
  if (next.kind != DocumentOpKind::kUpdate) {
    prev = std::move(next);
    return;
  }
  switch (prev.kind) {
    case DocumentOpKind::kUpsert:
      Merge(prev.row, next.set);
      return;
    case DocumentOpKind::kUpdate:
      Merge(prev.set, next.set);
      return;
    case DocumentOpKind::kNone:
      prev = std::move(next);
      return;
    case DocumentOpKind::kDelete:             // an update of a deleted row changes nothing
    case DocumentOpKind::kNeedsFullDocument:  // the fetched document will include this update
      return;
  }
}

// Pending values of a column that an ALTER turns into text become what MySQL makes of the rows it
// already holds, so the result does not depend on where batches start and end.
void ConvertPending(std::vector<DocumentOp>& documents, const SchemaChange& change) {
  const ColumnSchema& c = change.columns.at(0);
  if (!IsTextType(c.type) || IsTextType(change.previous_type)) return;
  auto convert = [&](Row& row) {
    for (ColumnValue& cv : row) {
      if (AsciiLower(cv.column) == AsciiLower(c.name)) cv.value = ConvertedToText(cv.value, change.previous_type);
    }
  };
  for (DocumentOp& d : documents) {
    if (d.table == change.table) {
      convert(d.row);
      convert(d.set);
    }
    auto rows = d.children.find(change.table);
    if (rows != d.children.end()) {
      for (Row& r : rows->second) convert(r);
    }
  }
}

}  // namespace

std::string KeyText(const Row& key, const TableSchema* table) {
  std::string out;
  for (const ColumnValue& cv : key) {
    const ColumnSchema* c = table ? table->FindColumn(cv.column) : nullptr;
    out += SqlLiteral(cv.value, c ? c->type : cv.value.type);
    out += ',';
  }
  return out;
}

Batch::Segment& Batch::Open() {
  if (segments_.empty() || segments_.back().collection) {
    segments_.emplace_back();
    index_.clear();
  }
  return segments_.back();
}

void Batch::Add(MappedEvent event, const Catalog& catalog) {
  Segment& seg = Open();
  bool retyped = false;
  for (SchemaChange& c : event.schema_changes) {
    if (c.kind == SchemaChangeKind::kModifyColumn) {
      ConvertPending(seg.documents, c);
      retyped = true;
    }
    seg.schema_changes.push_back(std::move(c));
  }
  if (retyped) Reindex(seg, catalog);
  if (event.document && event.document->kind != DocumentOpKind::kNone) {
    DocumentOp& op = *event.document;
    auto remember = [&](const std::string& name) {
      if (const TableSchema* t = catalog.Find(name)) seg.tables[t->name] = *t;
    };
    remember(op.table);
    for (const std::string& d : op.descendants) remember(d);
    std::pair<std::string, std::string> k(op.table, KeyText(op.key, catalog.Find(op.table)));
    auto it = index_.find(k);
    if (it == index_.end()) {
      index_.emplace(std::move(k), seg.documents.size());
      seg.documents.push_back(std::move(op));
    } else {
      Fold(seg.documents[it->second], std::move(op));
    }
  }
  if (event.collection) seg.collection = std::move(event.collection);
}

// The index keys documents by their key's text, which follows the key column's type: after a key
// column changed type, earlier documents are found again under their new text, and two that now name
// the same row are folded in order.
void Batch::Reindex(Segment& seg, const Catalog& catalog) {
  index_.clear();
  std::vector<DocumentOp> documents;
  for (DocumentOp& op : seg.documents) {
    std::pair<std::string, std::string> k(op.table, KeyText(op.key, catalog.Find(op.table)));
    auto it = index_.find(k);
    if (it == index_.end()) {
      index_.emplace(std::move(k), documents.size());
      documents.push_back(std::move(op));
    } else {
      Fold(documents[it->second], std::move(op));
    }
  }
  seg.documents = std::move(documents);
}

std::vector<const DocumentOp*> Batch::NeedsFullDocument() const {
  std::vector<const DocumentOp*> out;
  for (const Segment& s : segments_) {
    for (const DocumentOp& d : s.documents) {
      if (d.kind == DocumentOpKind::kNeedsFullDocument) out.push_back(&d);
    }
  }
  return out;
}

}  // namespace m2m
