import TetherJSON

/// CEL's macros over lists and maps: `all`, `exists`, `exists_one`/`existsOne`, `map` and
/// `filter` with one variable (a list's elements, a map's keys), and cel-go's two-variable
/// comprehensions (index and element, or key and value) with `transformList`, `transformMap`
/// and `transformMapEntry`.
extension CELEvaluator {
    mutating func comprehension(
        _ name: String, over target: CELValue, variables: [String], _ arguments: [CELExpression], bindings: [String: CELValue]
    ) throws(EvaluationError) -> CELValue {
        if name == "optMap" || name == "optFlatMap" {
            return try optionalMacro(name, over: target, variable: variables[0], arguments[0], bindings: bindings)
        }
        // Each element as the variables see it: one variable takes a list's element or a map's key;
        // two take the index and the element, or the key and the value.
        let elements: [(first: CELValue, second: CELValue)]
        switch target {
        case .array(let items): elements = items.enumerated().map { (.integer(Int64($0.offset)), $0.element) }
        case .object(let members): elements = members.keys.sorted().map { (.string($0), members[$0]!) }  // keys in a stable order
        default: throw EvaluationError("no such overload: \(target.kindName).\(name)()")
        }
        let isList: Bool
        if case .array = target { isList = true } else { isList = false }
        /// What one variable ranges over: a list's elements, a map's keys.
        func single(_ element: (first: CELValue, second: CELValue)) -> CELValue { isList ? element.second : element.first }
        var scope = bindings
        func bind(_ element: (first: CELValue, second: CELValue)) {
            if variables.count == 2 {
                scope[variables[0]] = element.first
                scope[variables[1]] = element.second
            } else {
                scope[variables[0]] = single(element)
            }
        }
        func test(_ element: (first: CELValue, second: CELValue), _ expression: CELExpression) throws(EvaluationError) -> Bool {
            bind(element)
            guard case .bool(let flag) = try value(of: expression, in: scope) else {
                throw EvaluationError("the predicate of \(name) is not a bool")
            }
            return flag
        }
        func transformed(_ element: (first: CELValue, second: CELValue)) throws(EvaluationError) -> CELValue? {
            // With a filter first, an element it refuses is left out.
            if arguments.count == 2, try !test(element, arguments[0]) { return nil }
            bind(element)
            return try value(of: arguments[arguments.count - 1], in: scope)
        }
        switch name {
        case "all":
            // As `&&`: a false element decides even when another is an error.
            var firstError: EvaluationError?
            for element in elements {
                do throws(EvaluationError) {
                    if try !test(element, arguments[0]) { return .bool(false) }
                } catch {
                    if firstError == nil { firstError = error }
                }
            }
            if let firstError { throw firstError }
            return .bool(true)
        case "exists":
            var firstError: EvaluationError?
            for element in elements {
                do throws(EvaluationError) {
                    if try test(element, arguments[0]) { return .bool(true) }
                } catch {
                    if firstError == nil { firstError = error }
                }
            }
            if let firstError { throw firstError }
            return .bool(false)
        case "exists_one", "existsOne":
            var count = 0
            for element in elements where try test(element, arguments[0]) { count += 1 }
            return .bool(count == 1)
        case "filter":
            var kept: [CELValue] = []
            for element in elements where try test(element, arguments[0]) { kept.append(single(element)) }
            return .array(kept)
        case "transformMap":
            // The keys stay; a list's would be its indexes, and a map here has string keys only.
            guard case .object = target else {
                throw EvaluationError(
                    "transformMap over a list makes integer keys, and maps here have string keys; use transformList or transformMapEntry")
            }
            var result: [String: CELValue] = [:]
            for element in elements {
                guard case .string(let key) = element.first, let value = try transformed(element) else { continue }
                result[key] = value
            }
            return .object(result)
        case "transformMapEntry":
            var result: [String: CELValue] = [:]
            for element in elements {
                guard let entry = try transformed(element) else { continue }
                guard case .object(let members) = entry else {
                    throw EvaluationError("transformMapEntry's expression must give a map, not \(entry.kindName)")
                }
                for (key, value) in members {
                    guard result.updateValue(value, forKey: key) == nil else {
                        throw EvaluationError("insert failed: key \(key) already exists")
                    }
                }
            }
            return .object(result)
        default:  // map and transformList, with an optional filter first
            var mapped: [CELValue] = []
            for element in elements {
                if let value = try transformed(element) { mapped.append(value) }
            }
            return .array(mapped)
        }
    }
}
