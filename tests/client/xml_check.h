// A small XML well-formedness check for the SVG files the client writes:
// one root element, balanced and properly nested tags, quoted attributes,
// known entities only. Returns "" when well-formed, else what is wrong.
#pragma once

#include <cctype>
#include <map>
#include <string>
#include <vector>

namespace dms::testing {

struct XmlElementCount {
  std::map<std::string, int> by_name;  // element name -> occurrences
  std::string root;
};

inline std::string CheckXml(const std::string& doc, XmlElementCount* counts = nullptr) {
  std::vector<std::string> stack;
  size_t i = 0;
  bool seen_root = false;
  auto entity_ok = [&](size_t at) {
    static const char* kEntities[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (const char* e : kEntities) {
      if (doc.compare(at, std::char_traits<char>::length(e), e) == 0) return true;
    }
    if (doc.compare(at, 2, "&#") == 0) {
      const size_t semi = doc.find(';', at);
      return semi != std::string::npos && semi - at <= 10;
    }
    return false;
  };
  if (doc.rfind("<?xml", 0) == 0) {
    i = doc.find("?>");
    if (i == std::string::npos) return "unterminated XML declaration";
    i += 2;
  }
  while (i < doc.size()) {
    if (doc[i] != '<') {
      if (doc[i] == '&' && !entity_ok(i)) return "bad entity at offset " + std::to_string(i);
      if (doc[i] == '>') return "stray '>' at offset " + std::to_string(i);
      if (stack.empty() && !std::isspace(static_cast<unsigned char>(doc[i]))) {
        return "text outside the root element at offset " + std::to_string(i);
      }
      ++i;
      continue;
    }
    if (doc.compare(i, 4, "<!--") == 0) {
      const size_t end = doc.find("-->", i);
      if (end == std::string::npos) return "unterminated comment";
      i = end + 3;
      continue;
    }
    const bool closing = i + 1 < doc.size() && doc[i + 1] == '/';
    size_t j = i + (closing ? 2 : 1);
    const size_t name_start = j;
    while (j < doc.size() && (std::isalnum(static_cast<unsigned char>(doc[j])) || doc[j] == '-' || doc[j] == ':' || doc[j] == '_')) ++j;
    const std::string name = doc.substr(name_start, j - name_start);
    if (name.empty()) return "tag without a name at offset " + std::to_string(i);
    if (closing) {
      while (j < doc.size() && std::isspace(static_cast<unsigned char>(doc[j]))) ++j;
      if (j >= doc.size() || doc[j] != '>') return "bad closing tag </" + name;
      if (stack.empty() || stack.back() != name) {
        return "</" + name + "> does not close <" + (stack.empty() ? std::string("nothing") : stack.back()) + ">";
      }
      stack.pop_back();
      i = j + 1;
      continue;
    }
    // Attributes: name="value" or name='value', distinct names.
    std::map<std::string, bool> attrs;
    bool self_closing = false;
    while (true) {
      while (j < doc.size() && std::isspace(static_cast<unsigned char>(doc[j]))) ++j;
      if (j >= doc.size()) return "unterminated tag <" + name;
      if (doc[j] == '>') break;
      if (doc.compare(j, 2, "/>") == 0) {
        self_closing = true;
        ++j;
        break;
      }
      const size_t a = j;
      while (j < doc.size() && (std::isalnum(static_cast<unsigned char>(doc[j])) || doc[j] == '-' || doc[j] == ':' || doc[j] == '_')) ++j;
      const std::string attr = doc.substr(a, j - a);
      if (attr.empty()) return "bad attribute in <" + name + "> at offset " + std::to_string(j);
      if (attrs.count(attr)) return "duplicate attribute " + attr + " in <" + name + ">";
      attrs[attr] = true;
      if (j >= doc.size() || doc[j] != '=') return "attribute " + attr + " of <" + name + "> has no value";
      ++j;
      if (j >= doc.size() || (doc[j] != '"' && doc[j] != '\'')) return "unquoted attribute " + attr + " in <" + name + ">";
      const char q = doc[j];
      const size_t end = doc.find(q, j + 1);
      if (end == std::string::npos) return "unterminated attribute " + attr;
      for (size_t k = j + 1; k < end; ++k) {
        if (doc[k] == '<') return "'<' inside attribute " + attr;
        if (doc[k] == '&' && !entity_ok(k)) return "bad entity in attribute " + attr;
      }
      j = end + 1;
    }
    if (stack.empty()) {
      if (seen_root) return "a second root element <" + name + ">";
      seen_root = true;
      if (counts) counts->root = name;
    }
    if (counts) ++counts->by_name[name];
    if (!self_closing) stack.push_back(name);
    i = j + 1;
  }
  if (!stack.empty()) return "<" + stack.back() + "> is never closed";
  if (!seen_root) return "no root element";
  return "";
}

}  // namespace dms::testing
