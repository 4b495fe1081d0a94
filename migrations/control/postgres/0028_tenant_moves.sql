-- A tenant moving between isolation levels (`atrium tenant move`, src/app/tenant_move.cpp): the step it has reached
-- and the other level (the target while copying or frozen; the source whose copy is still to be removed once
-- switched), so a move that stopped anywhere resumes where it was. '' when no move is under way.
ALTER TABLE tenants ADD COLUMN move_state TEXT NOT NULL DEFAULT ''
  CHECK (move_state IN ('', 'copying', 'frozen', 'switched'));
ALTER TABLE tenants ADD COLUMN move_level TEXT NOT NULL DEFAULT ''
  CHECK (move_level IN ('', 'shared', 'schema', 'database'));
