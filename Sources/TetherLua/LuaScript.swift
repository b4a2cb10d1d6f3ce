import CTetherLua
import Foundation
import Synchronization
import TetherJSON

/// What one call of a script may spend.
public struct LuaLimits: Sendable, Hashable {
    /// Lua VM instructions per call, counted in steps of 1,000.
    public var instructions: Int
    public var time: Duration
    /// Bytes the script's state may hold during a call, its inputs included.
    public var memoryBytes: Int

    public init(instructions: Int = 10_000_000, time: Duration = .seconds(1), memoryBytes: Int = 32 << 20) {
        self.instructions = instructions
        self.time = time
        self.memoryBytes = memoryBytes
    }
}

/// Why a script failed, naming it and, when Lua knows it, the line.
public struct LuaError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// It does not compile.
        case syntax
        /// It raised an error (`error()`, a nil index, a bad argument).
        case runtime
        /// It ran out of instructions, time or memory and was stopped.
        case limit
        /// It returned something that is not data (a function) or is nested too deeply.
        case result
        /// It does not define the function its operation calls.
        case missingFunction
    }

    public var kind: Kind
    public var message: String

    public var description: String { message }
}

/// One Lua 5.4 script in a sandbox of its own: only the base, string, table, math and utf8
/// libraries (no `os`, `io`, `debug`, `load` or bytecode), `require` that knows only the `kube`
/// helper module, and per call an instruction budget, a time limit and a memory ceiling that
/// the script cannot catch with `pcall`.
///
/// The state is kept between calls (loading the chunk once); calls are serialized by a lock.
/// A script can keep globals from one call to the next: it should not, as Karmada's do not.
public final class LuaScript: @unchecked Sendable {
    /// Names the script in every message: `replicaResource of sample-customization`.
    public let name: String
    public let limits: LuaLimits
    // Everything below is touched only while `lock` is held.
    private let lock = Mutex<Void>(())
    private let state: OpaquePointer
    private let budget: UnsafeMutablePointer<tether_lua_limits>
    /// What the state may hold while inputs are pushed and results read (outside a call's ceiling).
    private static let marshallingCeiling = 512 << 20

    /// Compiles and runs `source` (which defines the script's functions) under `limits`.
    public init(name: String, source: String, limits: LuaLimits = LuaLimits()) throws(LuaError) {
        self.name = name
        self.limits = limits
        budget = UnsafeMutablePointer<tether_lua_limits>.allocate(capacity: 1)
        budget.initialize(to: tether_lua_limits(used: 0, ceiling: Self.marshallingCeiling, instructions: 0, deadline_ns: 0, stopped: 0))
        guard let opened = tether_lua_new_sandbox(budget) else {
            budget.deallocate()
            throw LuaError(kind: .limit, message: "\(name): cannot create a Lua state: out of memory")
        }
        state = opened
        // On a throw from here on, deinit closes the state (every property is set).
        try lock.withLock { _ throws(LuaError) in
            try run(chunk: LuaPrelude.source, named: "kube")
            try run(chunk: source, named: name)
        }
    }

    deinit {
        lua_close(state)
        budget.deallocate()
    }

    /// Whether the script defines a global function `function`.
    public func defines(_ function: String) -> Bool {
        lock.withLock { _ in
            defer { lua_settop(state, 0) }
            return lua_getglobal(state, function) == LUA_TFUNCTION
        }
    }

    /// Calls the global function `function` with `arguments`, returning `results` values. An
    /// empty table comes back as an empty array where the matching `shapes` value has an array
    /// there, else as an empty object (Lua has one kind of table for both).
    public func call(_ function: String, _ arguments: [JSONValue], results: Int, shapes: [JSONValue?] = []) throws(LuaError) -> [JSONValue] {
        try lock.withLock { _ throws(LuaError) -> [JSONValue] in
            defer {
                lua_settop(state, 0)
                // Inputs and garbage of this call go now, not at some later call's expense.
                tether_lua_collect(state)
            }
            budget.pointee.ceiling = Self.marshallingCeiling
            guard lua_getglobal(state, function) == LUA_TFUNCTION else {
                throw LuaError(kind: .missingFunction, message: "\(name): defines no function \(function)")
            }
            for argument in arguments { try push(argument, depth: 0) }
            try protectedCall(arguments: Int32(arguments.count), results: Int32(results))
            var values: [JSONValue] = []
            for index in 0..<results {
                values.append(try value(at: Int32(index + 1), shape: index < shapes.count ? shapes[index] : nil, depth: 0))
            }
            return values
        }
    }

    // MARK: Running under limits

    private func run(chunk: String, named chunkName: String) throws(LuaError) {
        let status = chunk.utf8CString.withUnsafeBufferPointer { text in
            // Text only ("t"): precompiled bytecode can crash the interpreter.
            luaL_loadbufferx(state, text.baseAddress, text.count - 1, "=\(chunkName)", "t")
        }
        guard status == LUA_OK else { throw LuaError(kind: .syntax, message: popMessage()) }
        try protectedCall(arguments: 0, results: 0)
    }

    private func protectedCall(arguments: Int32, results: Int32) throws(LuaError) {
        budget.pointee.stopped = 0
        budget.pointee.instructions = Int64(limits.instructions)
        budget.pointee.ceiling = budget.pointee.used + limits.memoryBytes
        let (seconds, attoseconds) = limits.time.components
        budget.pointee.deadline_ns = tether_lua_now_ns() + seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        let status = tether_lua_pcall(state, arguments, results)
        let stopped = budget.pointee.stopped
        budget.pointee.deadline_ns = 0
        budget.pointee.ceiling = Self.marshallingCeiling
        guard status != LUA_OK else { return }
        let message = popMessage()
        switch stopped {
        case Int32(TETHER_LUA_OUT_OF_INSTRUCTIONS):
            throw LuaError(kind: .limit, message: "\(name): stopped after \(limits.instructions) instructions (\(message))")
        case Int32(TETHER_LUA_OUT_OF_TIME):
            throw LuaError(kind: .limit, message: "\(name): stopped after \(limits.time) (\(message))")
        case Int32(TETHER_LUA_OUT_OF_MEMORY):
            throw LuaError(kind: .limit, message: "\(name): stopped at its memory ceiling of \(limits.memoryBytes) bytes")
        default:
            throw LuaError(kind: .runtime, message: message)
        }
    }

    private func popMessage() -> String {
        defer { tether_lua_pop(state, 1) }
        guard lua_type(state, -1) == LUA_TSTRING, let text = lua_tolstring(state, -1, nil) else {
            return "\(name): an error that is not a string"
        }
        return String(cString: text)
    }

    // MARK: Values

    /// Nesting beyond this is refused both ways (objects are limited far below it).
    static let maximumDepth = 100

    private func push(_ value: JSONValue, depth: Int) throws(LuaError) {
        guard depth < Self.maximumDepth, lua_checkstack(state, 4) != 0 else {
            throw LuaError(kind: .result, message: "\(name): an input is nested more than \(Self.maximumDepth) levels deep")
        }
        switch value {
        case .null: lua_pushnil(state)
        case .bool(let flag): lua_pushboolean(state, flag ? 1 : 0)
        case .integer(let number): lua_pushinteger(state, lua_Integer(number))
        case .double(let number): lua_pushnumber(state, number)
        case .string(let text):
            var text = text
            text.withUTF8 { bytes in
                bytes.withMemoryRebound(to: CChar.self) { _ = lua_pushlstring(state, $0.baseAddress, $0.count) }
            }
        case .array(let elements):
            lua_createtable(state, Int32(clamping: elements.count), 0)
            for (index, element) in elements.enumerated() {
                try push(element, depth: depth + 1)
                lua_rawseti(state, -2, lua_Integer(index + 1))
            }
        case .object(let members):
            lua_createtable(state, 0, Int32(clamping: members.count))
            for (key, member) in members {
                try push(member, depth: depth + 1)
                lua_setfield(state, -2, key)
            }
        }
    }

    private func value(at index: Int32, shape: JSONValue?, depth: Int) throws(LuaError) -> JSONValue {
        guard depth < Self.maximumDepth, lua_checkstack(state, 4) != 0 else {
            throw LuaError(
                kind: .result, message: "\(name): returned a table nested more than \(Self.maximumDepth) levels deep (or one that contains itself)")
        }
        let absolute = lua_absindex(state, index)
        switch lua_type(state, absolute) {
        case LUA_TNIL, LUA_TNONE: return .null
        case LUA_TBOOLEAN: return .bool(lua_toboolean(state, absolute) != 0)
        case LUA_TNUMBER:
            if lua_isinteger(state, absolute) != 0 { return .integer(Int64(lua_tointegerx(state, absolute, nil))) }
            let number = lua_tonumberx(state, absolute, nil)
            // Karmada's Lua 5.1 has only floats, and JSON one number type: 3.0 is 3.
            if number.rounded() == number, abs(number) < 9.0e15 { return .integer(Int64(number)) }
            return .double(number)
        case LUA_TSTRING:
            var length = 0
            guard let bytes = lua_tolstring(state, absolute, &length) else { return .string("") }
            return .string(String(decoding: UnsafeRawBufferPointer(start: bytes, count: length), as: UTF8.self))
        case LUA_TTABLE:
            return try table(at: absolute, shape: shape, depth: depth)
        default:
            let type = String(cString: lua_typename(state, lua_type(state, absolute)))
            throw LuaError(kind: .result, message: "\(name): returned a \(type), which is not data")
        }
    }

    private func table(at index: Int32, shape: JSONValue?, depth: Int) throws(LuaError) -> JSONValue {
        var byPosition: [Int64: JSONValue] = [:]
        var byName: [String: JSONValue] = [:]
        lua_pushnil(state)
        while lua_next(state, index) != 0 {
            // Key at -2, value at -1; a number key is never turned into a string (lua_next needs it as it is).
            switch lua_type(state, -2) {
            case LUA_TNUMBER where lua_isinteger(state, -2) != 0:
                let position = Int64(lua_tointegerx(state, -2, nil))
                let elementShape: JSONValue? = if case .array(let elements)? = shape { elements.first } else { nil }
                byPosition[position] = try value(at: -1, shape: elementShape, depth: depth + 1)
            case LUA_TSTRING:
                var length = 0
                let bytes = lua_tolstring(state, -2, &length)
                let key = bytes.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: length), as: UTF8.self) } ?? ""
                byName[key] = try value(at: -1, shape: shape?[key], depth: depth + 1)
            default:
                throw LuaError(kind: .result, message: "\(name): returned a table with a key that is neither a string nor an integer")
            }
            tether_lua_pop(state, 1)
        }
        if byName.isEmpty, !byPosition.isEmpty, byPosition.keys.min() == 1, byPosition.keys.max() == Int64(byPosition.count) {
            return .array((1...Int64(byPosition.count)).map { byPosition[$0] ?? .null })
        }
        if byName.isEmpty, byPosition.isEmpty {
            if case .array? = shape { return .array([]) }
            return .object([:])
        }
        for (position, element) in byPosition { byName[String(position)] = element }
        return .object(byName)
    }
}
