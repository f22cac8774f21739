-- LÖVE settings for the cfuture example: a small window, no audio (the
-- game makes no sound, and CI machines have no sound card).
function love.conf(t)
  t.identity = "cfuture-example"
  t.version = "11.4"
  t.window.title = "cfuture in LÖVE"
  t.window.width = 640
  t.window.height = 360
  t.window.vsync = 1
  t.modules.audio = false
  t.modules.sound = false
  t.modules.joystick = false
  t.modules.physics = false
end
